"""Issue 15: an operator's drain takes the server out of rotation first, then closes its sockets, so the
reconnect wave never bounces off the draining server.

HAProxy learns of the drain only from `/readyz` (checks every 300 ms, out after 2, rendered from the budget);
the controller observes HAProxy's runtime API, or waits the budget's `lb_deregistration_s`. Swarm clients and
official Phoenix JS clients sit on A; after the drain every one is on B, closed with 1012, and no reconnect
was refused by A (503 draining) or rate limited. The times are not asserted here: bench/rotation.py has them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.core.budget import Budget
from testbed.harness import AgentProcess, Fleet, LoadBalancer, ServerProcess
from testbed.harness.supervising import Supervised
from testbed.harness.waiting import wait_for
from testbed.phoenix import CLOSE_SERVICE_RESTART
from tests.e2e.drain_setup import SETTLE_S, journal, step_at
from tests.support import needs_root
from tests.support.budgets import E2E

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]

QUICK_CHECKS = Budget(**{**E2E.as_dict(), "lb_check_interval_s": 0.3, "lb_unhealthy_threshold": 2,
                         "lb_check_timeout_s": 0.3})
"""HAProxy checks `/readyz` every 300 ms and takes a server out after 2 failures: deregistration <= 0.9 s."""
SLOW_CHECKS = Budget(**{**E2E.as_dict(), "lb_check_interval_s": 5.0, "lb_unhealthy_threshold": 2,
                        "lb_check_timeout_s": 5.0})
"""A 15 s deregistration time, five times the no-progress window (3 s)."""
SWARM_CLIENTS, JS_CLIENTS = 200, 5
REJECTED = "drainctl_testbed_connects_rejected_total"


def _js_peers(fleet: Fleet, lb: LoadBalancer, script: Path) -> list[Supervised]:
    argv = ["node", str(script), lb.ws_url]
    return [fleet.start_command(f"phoenix-js-{i}", [*argv, f"js-{i}", "30000", "room:js", "300"])
            for i in range(JS_CLIENTS)]


def _rotation(lb: LoadBalancer, *, observe: bool) -> dict[str, Any]:
    section: dict[str, Any] = {"enabled": True}
    if observe:
        section["haproxy"] = {"socket": lb.runtime_api, "backend": "servers"}
    return section


def _everyone_on_a(fleet: Fleet, *, fault: str | None = None, js: Path | None = None) -> tuple[
    ServerProcess, ServerProcess, LoadBalancer, AgentProcess, Any, list[Supervised]
]:
    """A and B behind HAProxy, B out by hand while the clients join, so every client starts on A."""
    a, b = fleet.start_server("A", fault=fault), fleet.start_server("B")
    lb = fleet.start_haproxy([a, b])
    lb.set_server_state("B", "maint")
    lb.wait_state("B", "MAINT")
    agent = fleet.start_agent(a)
    swarm = fleet.start_swarm(lb.ws_url, count=SWARM_CLIENTS, duration_s=3600, heartbeat_timeout_s=0)
    peers = _js_peers(fleet, lb, js) if js is not None else []
    swarm.wait_joined(SETTLE_S)
    for peer in peers:
        assert peer.wait_event("joined", timeout_s=SETTLE_S)["server"] == "A"
    lb.set_server_state("B", "ready")
    lb.wait_state("B", "UP", timeout_s=SETTLE_S)
    return a, b, lb, agent, swarm, peers


@pytest.mark.parametrize("observe", [True, False], ids=["observed-through-haproxy", "budget-timer-only"])
def test_operator_drain_leaves_rotation_first_and_no_reconnect_is_refused(
    fleets: MakeFleet, phoenix_js: Path, observe: bool
) -> None:
    fleet = fleets(QUICK_CHECKS)
    a, b, lb, agent, swarm, peers = _everyone_on_a(fleet, js=phoenix_js)
    config = fleet.controller_config([agent])
    config["rotation"] = _rotation(lb, observe=observe)
    controller = fleet.start_controller(config)
    total = SWARM_CLIENTS + JS_CLIENTS
    assert a.open_sockets() == total

    controller.drain("A", deadline_s=30)
    wait_for(lambda: b.open_sockets() == total and a.open_sockets() == 0, timeout_s=SETTLE_S,
             what=f"all {total} clients on B")
    report = swarm.stop()

    assert report["refused_draining"] == 0, "no reconnect was sent back to the draining server"
    assert report["rate_limited"] == 0
    assert report["by_cause"] == {f"close:{CLOSE_SERVICE_RESTART}": SWARM_CLIENTS}
    assert set(report["servers_at_end"]) <= {"B"}, "every client's socket is on B (B holds them all)"
    assert a.metric(REJECTED, {"reason": "draining"}) == 0
    assert a.metric(REJECTED, {"reason": "rate_limited"}) + b.metric(REJECTED, {"reason": "rate_limited"}) == 0
    for peer in peers:
        events = peer.events()
        assert [e["code"] for e in events if e["event"] == "close"] == [CLOSE_SERVICE_RESTART]
        assert not [e for e in events if e["event"] == "error"], json.dumps(events)
        assert [e["server"] for e in events if e["event"] == "joined"] == ["A", "B"]

    (drain,) = controller.drains_of("A")
    lines = journal(controller, drain["id"])
    step = "out of rotation (observed)" if observe else "out of rotation (timer)"
    assert step_at(lines, "drain requested") <= step_at(lines, step) <= step_at(lines, "drain accepted")
    assert drain["outcome"] == "graceful" and drain["sockets_reset"] == 0


@needs_root
def test_a_stuck_server_is_reset_on_the_no_progress_rule_not_after_the_deregistration_wait(
    fleets: MakeFleet,
) -> None:
    fleet = fleets(SLOW_CHECKS)
    _a, _b, lb, agent, swarm, _ = _everyone_on_a(fleet, fault="ignore-drain")
    config = fleet.controller_config([agent])
    config["rotation"] = _rotation(lb, observe=False)
    controller = fleet.start_controller(config)

    controller.drain("A", deadline_s=30)
    wait_for(lambda: controller.drains_of("A")[-1]["outcome"] == "forced", timeout_s=SETTLE_S,
             what="A's drain forced")
    swarm.stop()

    (drain,) = controller.drains_of("A")
    lines = journal(controller, drain["id"])
    skipped = next(line for line in lines if line["step"] == "out of rotation (skipped)")
    assert "stayed ready" in skipped["detail"]
    waited_s = step_at(lines, "reset requested") - step_at(lines, "drain requested")
    assert waited_s < SLOW_CHECKS.lb_deregistration_s, "the stuck server's clients did not wait for the LB"
    assert drain["sockets_reset"] > 0
