"""The timer budget refuses any combination of timers that would cut live clients or miss a deadline."""

from __future__ import annotations

import pytest

from controller.core.budget import Budget
from controller.core.errors import BudgetError


def test_defaults_hold_every_invariant() -> None:
    budget = Budget()
    assert budget.paced_drain_s <= budget.drain_deadline_s
    assert budget.lb_idle_timeout_s > budget.heartbeat_interval_s


@pytest.mark.parametrize(
    ("changes", "names", "rule"),
    [
        ({"heartbeat_timeout_s": 5}, ["heartbeat_timeout_s (5)", "heartbeat_interval_s (10)"], "greater"),
        ({"server_idle_timeout_s": 10}, ["server_idle_timeout_s (10)", "heartbeat_interval_s (10)"], "greater"),
        ({"lb_idle_timeout_s": 8}, ["lb_idle_timeout_s (8)", "heartbeat_interval_s (10)"], "greater"),
        ({"drain_rate_per_s": 100}, ["expected_sockets_per_server (10000)", "drain_deadline_s (30)"], "at most"),
        ({"platform_notice_s": 60}, ["drain_deadline_s (30)", "platform_notice_s (60)"], "less than"),
        ({"no_progress_window_s": 30}, ["no_progress_window_s (30)", "drain_deadline_s (30)"], "less than"),
        ({"lb_check_timeout_s": 6}, ["lb_check_timeout_s (6)", "lb_check_interval_s (5)"], "at most"),
        (
            {"lb_check_interval_s": 60, "lb_check_timeout_s": 30, "lb_unhealthy_threshold": 9},
            ["lb_deregistration_s (570", "platform_notice_s (600)"],
            "less than",
        ),
    ],
)
def test_broken_invariant_names_both_timers_values_and_rule(
    changes: dict[str, float], names: list[str], rule: str
) -> None:
    with pytest.raises(BudgetError) as caught:
        Budget.from_mapping(changes)
    message = str(caught.value)
    for name in names:
        assert name in message
    assert rule in message


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"heartbeat_intervl_s": 10}, "budget.heartbeat_intervl_s: unknown key"),
        ({"heartbeat_interval_s": "10"}, "budget.heartbeat_interval_s: expected a number"),
        ({"heartbeat_interval_s": True}, "budget.heartbeat_interval_s: expected a number"),
        ({"expected_sockets_per_server": 10.5}, "expected a whole number"),
        ({"verify_s": -1}, "verify_s must be a positive number"),
    ],
)
def test_malformed_budget_is_refused_naming_the_key(raw: dict[str, object], needle: str) -> None:
    with pytest.raises(BudgetError, match=needle):
        Budget.from_mapping(raw)


def test_deregistration_is_interval_times_threshold_plus_one_timeout() -> None:
    budget = Budget(lb_check_interval_s=0.3, lb_unhealthy_threshold=2, lb_check_timeout_s=0.25)
    assert budget.lb_deregistration_s == pytest.approx(0.85)
    assert Budget().lb_deregistration_s == 15.0  # GCP readiness check: every 5 s, down after 2, 5 s timeout


def test_budget_is_frozen() -> None:
    budget = Budget()
    with pytest.raises(AttributeError):
        budget.drain_deadline_s = 1  # type: ignore[misc]
