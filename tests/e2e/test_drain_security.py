"""Issue 5, agent security on the real fleet.

Covered already with a stand-in app, and not repeated here: every agent route but /healthz answers 401 to a
missing or wrong token and does nothing (`tests/controller/agent/test_auth.py`), and a reset aborts only the
service port's established sockets (`tests/controller/agent/test_sockets.py`). Here, end to end: a controller
holding the wrong agent token changes nothing on the host, and a reset of one server through the controller
leaves every other socket on the machine (the other server's, HAProxy's frontend) alone.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.tokens import new_token_file
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S, app_drain_requests, disconnects_from, start_bed
from tests.support import needs_root

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_a_controller_with_a_wrong_agent_token_fails_the_drain_and_changes_nothing(fleets: MakeFleet) -> None:
    fleet = fleets(E2E_BUDGET)
    wrong = fleet.workdir / "wrong-agent.token"
    new_token_file(wrong)
    bed = start_bed(fleet, {"A": None}, clients_per_server=50, fallback={"enabled": False},
                    controller_options={"agent_token_files": {"A": wrong}})
    assert bed.controller is not None
    a, on_a = bed.servers["A"], bed.clients_on["A"]

    bed.controller.drain("A", deadline_s=8)
    status = bed.controller.wait_phase("A", ["failed"], timeout_s=SETTLE_S)

    assert "refused the token" in status["reason"], status["reason"]
    assert bed.controller.metric("drainctl_drain_failures_total", {"cause": "agent_unauthorized"}) == 1
    agent = bed.agents["A"]
    assert agent.metric("drainctl_agent_drains_requested_total") == 0
    assert agent.metric("drainctl_agent_resets_total") == 0
    assert app_drain_requests(a) == 0 and a.status()["draining"] is False
    assert a.open_sockets() == on_a and agent.connections() >= on_a, "every client still on A"
    assert bed.swarm.stop()["disconnects"] == []


@needs_root
def test_resetting_one_server_leaves_the_other_servers_and_haproxys_sockets_alone(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": None, "B": None}, healthy=(), clients_per_server=50)
    assert bed.controller is not None
    on_a = bed.clients_on["A"]

    answer = bed.controller.reset("A")
    wait_for(lambda: bed.servers["A"].open_sockets() == on_a, timeout_s=SETTLE_S, what="A's clients to return")
    report = bed.swarm.stop()

    assert answer["done"] and answer["reset"] >= on_a
    from_a = disconnects_from(report, "A")
    assert len(from_a) == on_a and {d["cause"] for d in from_a} == {"reset"}
    assert disconnects_from(report, "B") == [], "B's sockets (another port) were not touched"
    assert report["offline_s"]["never_rejoined"] == 0, "the frontend and A's listening socket still accept"
