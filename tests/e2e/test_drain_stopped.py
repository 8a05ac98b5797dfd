"""Issue 5, SIGSTOP path: the drain call to a stopped server times out, the reset still works on the stopped
process (the kernel aborts its sockets), and its clients reconnect to a healthy server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S, disconnects_from, journal, start_bed
from tests.support import needs_root

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]


def test_stopped_server_drain_times_out_and_the_reset_frees_its_clients(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": None}, clients_per_server=100)
    assert bed.controller is not None
    on_a = bed.clients_on["A"]
    bed.servers["A"].pause()  # SIGSTOP: the kernel keeps A's sockets open, nothing answers on them

    retirement = bed.platform.retire(bed.servers["A"], agent=bed.agents["A"], notice_s=60)
    retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    (drain,) = bed.controller.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "forced")
    failed = next(line for line in journal(bed.controller, drain["id"]) if line["step"] == "drain request failed")
    assert "did not answer" in failed["detail"], failed["detail"]
    assert drain["sockets_reset"] >= on_a
    assert retirement.released_by == "controller" and retirement.released_in_time
    assert retirement.agent_metrics is not None
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_drains_requested_total", {"outcome": "timeout"},
                      where="agent") == 1
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_sockets_reset_total", {"by": "controller"},
                      where="agent") >= on_a

    from_a = disconnects_from(report, "A")
    assert len(from_a) == on_a and {d["cause"] for d in from_a} == {"reset"}
    assert report["servers_at_end"] == {"B": bed.clients} and report["offline_s"]["never_rejoined"] == 0
