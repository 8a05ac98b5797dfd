"""Issue 5, `kill -9` of the controller mid-drain: the restarted controller resumes from its journal and
finishes the drain exactly once. Counted where it cannot be faked: the app logs every drain request it
receives, and the agent counts every one it passed on."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from testbed.harness.waiting import wait_for
from testbed.phoenix import CLOSE_SERVICE_RESTART
from tests.e2e.drain_setup import SETTLE_S, app_drain_requests, journal, start_bed, step_at
from tests.support import SLOW_DRAIN_BUDGET

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_controller_killed_mid_drain_resumes_from_its_journal_and_drains_exactly_once(fleets: MakeFleet) -> None:
    # 300 sockets at 20/s take 15 s: plenty of time to kill the controller in the middle.
    bed = start_bed(fleets(SLOW_DRAIN_BUDGET), {"A": None}, clients_per_server=300)
    assert bed.controller is not None
    a, on_a = bed.servers["A"], bed.clients_on["A"]
    config = bed.fleet.controller_config(list(bed.agents.values()), prometheus=bed.prometheus)

    retirement = bed.platform.retire(a, agent=bed.agents["A"], notice_s=60)
    wait_for(lambda: a.open_sockets() <= on_a - 40, timeout_s=SETTLE_S, what="A's drain to be under way")
    assert bed.controller.kill() is not None
    left_at_kill = a.open_sockets()
    assert left_at_kill > 0, "the controller must die while the drain is still running"

    restarted = bed.fleet.start_controller(config)
    retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    assert app_drain_requests(a) == 1, "no second drain request reached the app"
    assert retirement.agent_metrics is not None
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_drains_requested_total", where="agent") == 1
    (drain,) = restarted.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "graceful"), "no instance lost, none drained twice"
    assert "resuming 1 unfinished drains: A (verifying)" in restarted.log_text()
    steps = [line["step"] for line in journal(restarted, drain["id"])]
    assert steps.count("drain requested") == 1
    assert step_at(journal(restarted, drain["id"]), "verified zero") > 0
    assert retirement.released_by == "controller" and retirement.released_in_time
    assert report["by_cause"] == {f"close:{CLOSE_SERVICE_RESTART}": on_a}
    assert report["servers_at_end"] == {"B": bed.clients}
