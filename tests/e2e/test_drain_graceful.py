"""Issue 5, graceful path: every socket closed with 1012, nothing reset, release only after a verified zero."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from testbed.phoenix import CLOSE_SERVICE_RESTART
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S, app_drain_requests, journal, start_bed, step_at

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_graceful_drain_closes_every_socket_with_1012_and_releases_after_verified_zero(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": None}, clients_per_server=200)
    assert bed.controller is not None
    on_a = bed.clients_on["A"]
    assert on_a == 200

    retirement = bed.platform.retire(bed.servers["A"], agent=bed.agents["A"], notice_s=60)
    retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    assert report["by_cause"] == {f"close:{CLOSE_SERVICE_RESTART}": on_a}, "every socket closed with 1012, none reset"
    assert len({d["client"] for d in report["disconnects"]}) == on_a
    assert report["servers_at_end"] == {"B": bed.clients} and report["offline_s"]["never_rejoined"] == 0

    (drain,) = bed.controller.drains_of("A")
    assert (drain["phase"], drain["outcome"], drain["sockets_reset"]) == ("released", "graceful", 0)
    assert drain["verified_by"] == "kernel"
    lines = journal(bed.controller, drain["id"])
    verified = next(line for line in lines if line["step"] == "verified zero")
    assert "kernel 0" in verified["detail"], "zero is proven by the kernel's count of A's sockets"
    assert step_at(lines, "drain requested") < verified["at"] <= step_at(lines, "release requested")
    assert retirement.released_by == "controller" and retirement.released_in_time
    assert retirement.released_at is not None and retirement.released_at >= verified["at"]

    assert retirement.agent_metrics is not None
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_sockets_reset_total", where="agent") == 0
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_drains_requested_total",
                      {"by": "controller", "outcome": "accepted"}, where="agent") == 1
    assert app_drain_requests(bed.servers["A"]) == 1
