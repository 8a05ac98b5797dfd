"""The timers of a drain: the budget's when the notice is long enough, shrunk in proportion when it is not."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest

from controller.engine.queueing import DueQueue
from controller.engine.scheduling import backoff_s, must_start_by, plan, release_margin_s
from tests.controller.engine.fakes import BUDGET


def test_a_long_notice_gets_the_budgets_drain_deadline_and_margin() -> None:
    timers = plan(start=0.0, not_after=600.0, drain_deadline_s=20.0, budget=BUDGET, holds=True)
    assert timers.force_at == 20.0
    assert timers.release_by == 600.0 - BUDGET.margin_s


def test_a_short_notice_keeps_the_margin_and_shrinks_drain_and_verify_in_proportion() -> None:
    """The margin shrinks last (a release that fails once, a wall clock that is off): 15 s left of a nominal
    30 s (drain 20, verify 5, margin 5) keep the 5 s margin; drain and verify share the other 10 s."""
    timers = plan(start=0.0, not_after=15.0, drain_deadline_s=20.0, budget=BUDGET, holds=True)
    assert timers.release_by == pytest.approx(15.0 - 5.0)
    assert timers.force_at == pytest.approx(20.0 * 10.0 / 25.0)
    assert 0 < timers.force_at < timers.release_by < 15.0


def test_a_very_short_notice_keeps_half_of_it_as_margin() -> None:
    timers = plan(start=0.0, not_after=6.0, drain_deadline_s=20.0, budget=BUDGET, holds=True)
    assert timers.release_by == pytest.approx(3.0)
    assert 0 < timers.force_at < timers.release_by


@pytest.mark.parametrize("margin_s", [2.0, 5.0, 40.0])
def test_the_margin_never_jumps_as_the_time_left_shrinks(margin_s: float) -> None:
    budget = replace(BUDGET, margin_s=margin_s, platform_notice_s=100.0)
    nominal = 20.0 + budget.verify_s + margin_s
    steps = [nominal * n / 1000 for n in range(1, 1201)]
    margins = [release_margin_s(left, drain_deadline_s=20.0, budget=budget) for left in steps]
    assert all(abs(b - a) < 0.1 for a, b in pairwise(margins))
    assert margins[-1] == margin_s and all(m <= margin_s for m in margins)


def test_a_notice_already_past_forces_and_releases_at_once() -> None:
    timers = plan(start=10.0, not_after=5.0, drain_deadline_s=20.0, budget=BUDGET, holds=True)
    assert timers.force_at == 10.0 and timers.release_by == 5.0


def test_a_manual_drain_resets_at_the_operators_deadline() -> None:
    timers = plan(start=0.0, not_after=30.0, drain_deadline_s=30.0, budget=BUDGET, holds=False)
    assert timers.force_at == 30.0
    waited = plan(start=12.0, not_after=30.0, drain_deadline_s=30.0, budget=BUDGET, holds=False)
    assert waited.force_at == 30.0, "time spent waiting for the budget counts against the operator's deadline"


def test_a_waiting_drain_must_start_leaving_time_to_verify_and_release() -> None:
    assert must_start_by(not_after=100.0, budget=BUDGET, holds=True) == 100.0 - BUDGET.verify_s - BUDGET.margin_s
    assert must_start_by(not_after=100.0, budget=BUDGET, holds=False) == 100.0


def test_backoff_doubles_up_to_its_cap_and_respects_a_longer_hint() -> None:
    assert [backoff_s(n, initial_s=0.5, max_s=5.0) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff_s(1, initial_s=0.5, max_s=5.0, hint_s=2.0) == 2.0
    assert backoff_s(1, initial_s=0.5, max_s=5.0, hint_s=60.0) == 5.0


def test_the_queue_keeps_the_earliest_due_time_and_skips_busy_keys() -> None:
    queue = DueQueue()
    queue.schedule("A", 10.0)
    queue.schedule("A", 5.0)
    queue.schedule("A", 7.0)
    queue.schedule("B", 6.0)
    assert queue.next_at() == 5.0
    assert queue.pop_due(6.0, busy={"A"}) == ["B"]
    assert queue.next_at(busy={"A"}) is None
    assert queue.pop_due(6.0) == ["A"]
    assert len(queue) == 0
