"""Issue 15's acceptance: a drain takes the server out of rotation first, then closes its sockets, so the
reconnect wave never bounces off the draining server.

HAProxy learns of the drain only from `/readyz` (checks every 300 ms, out after 2, rendered from the budget)
and picks a server per new connection round robin, blind to open sockets, as a cloud load balancer does
(with the testbed's default `leastconn` a reconnect never goes to A while A holds more sockets than B, which
would hide refusals). The controller observes HAProxy's runtime API, or waits the budget's
`lb_deregistration_s`. 1,000 swarm clients and 20 official Phoenix JS clients sit on A; after an operator's
drain every one is on B, closed with 1012, and no reconnect was refused by A (503 draining) or rate
limited; the observed step ends before the deregistration time, the timer's only after it, so the observed
drain starts closing sooner. The same holds for an Azure-like scale-in (a lifecycle notice, only the health
checks take A out) and, at once, for a MIG-like deletion that takes A out of the backend itself. Offline
times are not asserted here (speed is bench/rotation.py's); a stuck server is reset on the no-progress rule.
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
SWARM_CLIENTS, JS_CLIENTS = 1000, 20
STUCK_CLIENTS = 200
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


def _everyone_on_a(fleet: Fleet, *, fault: str | None = None, js: Path | None = None,
                   clients: int = SWARM_CLIENTS) -> tuple[
    ServerProcess, ServerProcess, LoadBalancer, AgentProcess, Any, list[Supervised]
]:
    """A and B behind HAProxy (round robin), B out by hand while the clients join, so every client starts on A."""
    a, b = fleet.start_server("A", fault=fault), fleet.start_server("B")
    lb = fleet.start_haproxy([a, b], balance="roundrobin")
    lb.set_server_state("B", "maint")
    lb.wait_state("B", "MAINT")
    agent = fleet.start_agent(a)
    swarm = fleet.start_swarm(lb.ws_url, count=clients, duration_s=3600, heartbeat_timeout_s=0,
                              connect_rate_per_s=1000)
    peers = _js_peers(fleet, lb, js) if js is not None else []
    swarm.wait_joined(SETTLE_S)
    for peer in peers:
        assert peer.wait_event("joined", timeout_s=SETTLE_S)["server"] == "A"
    lb.set_server_state("B", "ready")
    lb.wait_state("B", "UP", timeout_s=SETTLE_S)
    return a, b, lb, agent, swarm, peers


def _everyone_moved_to_b_without_a_bounce(a: ServerProcess | None, b: ServerProcess, swarm: Any,
                                          peers: list[Supervised]) -> None:
    """What a user would notice: every client closed once with 1012, back on B, no refusal, no rate limit.
    `a` None: A was deleted after its release, so only the clients' own counts of refusals are left."""
    total = SWARM_CLIENTS + JS_CLIENTS
    wait_for(lambda: b.open_sockets() == total, timeout_s=SETTLE_S, what=f"all {total} clients on B")
    report = swarm.stop()
    assert report["refused_draining"] == 0, "no reconnect was sent back to the draining server"
    assert report["rate_limited"] == 0
    assert report["by_cause"] == {f"close:{CLOSE_SERVICE_RESTART}": SWARM_CLIENTS}
    # B holds every socket; a few joins may still be in flight when the swarm stops, hence "at most B".
    assert set(report["servers_at_end"]) <= {"B"}
    assert b.metric(REJECTED, {"reason": "rate_limited"}) == 0
    if a is not None:
        assert a.open_sockets() == 0
        assert a.metric(REJECTED, {"reason": "draining"}) == 0
        assert a.metric(REJECTED, {"reason": "rate_limited"}) == 0
    for peer in peers:
        events = peer.events()
        assert [e["code"] for e in events if e["event"] == "close"] == [CLOSE_SERVICE_RESTART], json.dumps(events)
        assert not [e for e in events if e["event"] == "error"], json.dumps(events)
        assert [e["server"] for e in events if e["event"] == "joined"] == ["A", "B"]


def _rotation_step(lines: list[dict[str, Any]]) -> tuple[str, float]:
    """The out-of-rotation step's journal name, and how long after the drain request closing started."""
    step = next(line["step"] for line in lines if line["step"].startswith("out of rotation"))
    assert step_at(lines, "drain requested") <= step_at(lines, step) <= step_at(lines, "drain accepted")
    return step, step_at(lines, "drain accepted") - step_at(lines, "drain requested")


@pytest.mark.parametrize("observe", [True, False], ids=["observed-through-haproxy", "budget-timer-only"])
def test_operator_drain_leaves_rotation_first_and_no_reconnect_is_refused(
    fleets: MakeFleet, phoenix_js: Path, observe: bool
) -> None:
    fleet = fleets(QUICK_CHECKS)
    a, b, lb, agent, swarm, peers = _everyone_on_a(fleet, js=phoenix_js)
    config = fleet.controller_config([agent])
    config["rotation"] = _rotation(lb, observe=observe)
    controller = fleet.start_controller(config)
    assert a.open_sockets() == SWARM_CLIENTS + JS_CLIENTS

    controller.drain("A", deadline_s=30)
    _everyone_moved_to_b_without_a_bounce(a, b, swarm, peers)

    (drain,) = controller.drains_of("A")
    step, closing_after_s = _rotation_step(journal(controller, drain["id"]))
    deregistration_s = QUICK_CHECKS.lb_deregistration_s
    if observe:  # HAProxy said DOWN after its second failed check: sooner than the whole deregistration time
        assert step == "out of rotation (observed)"
        assert closing_after_s < deregistration_s, "the observed drain starts closing before the timer would"
    else:
        assert step == "out of rotation (timer)"
        assert closing_after_s >= deregistration_s, "the timer waits the whole deregistration time"
    assert drain["outcome"] == "graceful" and drain["sockets_reset"] == 0


@pytest.mark.parametrize("deregister", [False, True], ids=["azure-like-health-checks-only", "mig-like-deletion"])
def test_a_scale_in_notice_leaves_rotation_first_and_never_waits_twice(
    fleets: MakeFleet, phoenix_js: Path, deregister: bool
) -> None:
    """A lifecycle notice for A: an Azure-like scale-in leaves A in the pool until its `/readyz` checks fail;
    a MIG-like deletion takes it out of the backend at the event, so the step is observed done at once."""
    fleet = fleets(QUICK_CHECKS)
    a, b, lb, agent, swarm, peers = _everyone_on_a(fleet, js=phoenix_js)
    config = fleet.controller_config([agent])
    config["rotation"] = _rotation(lb, observe=True)
    controller = fleet.start_controller(config)
    platform = fleet.platform(controller=controller, lb=lb)

    retirement = platform.retire(a, agent=agent, notice_s=60, deregister=deregister)
    retirement.wait_deleted(SETTLE_S)
    _everyone_moved_to_b_without_a_bounce(None, b, swarm, peers)

    assert retirement.released_in_time
    (drain,) = controller.drains_of("A")
    lines = journal(controller, drain["id"])
    step, _ = _rotation_step(lines)
    assert step == "out of rotation (observed)"
    detail = next(line["detail"] for line in lines if line["step"] == step)
    waited_s = float(detail.rsplit(" after ", 1)[1].removesuffix(" s"))
    if deregister:
        assert waited_s < QUICK_CHECKS.lb_check_interval_s, f"already out at the event: no second wait ({detail})"
    else:
        assert waited_s > 0, detail
    assert drain["outcome"] == "graceful" and drain["sockets_reset"] == 0


@needs_root
def test_a_stuck_server_is_reset_on_the_no_progress_rule_not_after_the_deregistration_wait(
    fleets: MakeFleet,
) -> None:
    fleet = fleets(SLOW_CHECKS)
    _a, _b, lb, agent, swarm, _ = _everyone_on_a(fleet, fault="ignore-drain", clients=STUCK_CLIENTS)
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
