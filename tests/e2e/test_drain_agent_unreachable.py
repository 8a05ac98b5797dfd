"""Issue 5, agent unreachable: the controller cannot reach the host's agent (its inventory address refuses
connections, as after a partition or a wrong address), so the drain fails with that reason, the failure
metric and the log say so, and the host is still released before the platform's deadline: the agent itself
is alive, saw the platform's notice, heard nothing from the controller and drained by itself (layer 2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.ports import free_port
from testbed.phoenix import CLOSE_SERVICE_RESTART
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S, disconnects_from, start_bed

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]

NOTICE_S = 20.0
GRACE_S = 8.0
"""The agent waits this long for a controller drain: longer than the controller needs to give up on the
graceful drain (no progress for 3 s), so the controller's failure is its own and not caused by the agent."""


def test_unreachable_agent_fails_the_drain_with_its_reason_and_the_host_is_still_released_in_time(
    fleets: MakeFleet,
) -> None:
    nobody = f"http://{free_port()}"  # bound and released at once: connections to it are refused
    bed = start_bed(fleets(E2E_BUDGET), {"A": None}, clients_per_server=50, fallback={"grace_s": GRACE_S},
                    controller_options={"agent_urls": {"A": nobody}})
    assert bed.controller is not None
    on_a = bed.clients_on["A"]

    retirement = bed.platform.retire(bed.servers["A"], agent=bed.agents["A"], notice_s=NOTICE_S)
    retirement.wait_deleted(SETTLE_S)
    status = bed.controller.wait_phase("A", ["failed"], timeout_s=SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    assert "unreachable" in status["reason"] and nobody in status["reason"], status["reason"]
    assert status["drain"]["outcome"] == "failed"
    assert bed.controller.metric("drainctl_drain_failures_total", {"cause": "agent_unreachable"}) == 1
    errors = [line for line in bed.controller.log_text().splitlines() if " ERROR " in line and "A: drain" in line]
    assert errors and "unreachable" in errors[0], errors

    assert retirement.released_by == "agent", "the host's own agent released it"
    assert retirement.released_in_time and retirement.deleted
    from_a = disconnects_from(report, "A")
    assert len(from_a) == on_a and {d["code"] for d in from_a} == {CLOSE_SERVICE_RESTART}, "drained by the agent"
    assert report["servers_at_end"] == {"B": bed.clients}
