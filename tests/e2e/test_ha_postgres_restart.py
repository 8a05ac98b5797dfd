"""Issue 10: Postgres restarted during a drain (every connection cut at once): the leader reconnects, the
drain completes with one drain request, and the journal holds every step (compared with the agent's count)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import SETTLE_S, app_drain_requests, journal, start_bed
from tests.e2e.ha_setup import ha_config, wait_leader
from tests.support import SLOW_DRAIN_BUDGET
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_postgres_restarted_during_a_drain_loses_no_transition_and_the_drain_completes_once(
    fleets: MakeFleet, postgres_server: PostgresServer, postgres_url: str
) -> None:
    bed = start_bed(fleets(SLOW_DRAIN_BUDGET), {"A": None}, clients_per_server=300, controller=False)
    a, on_a = bed.servers["A"], bed.clients_on["A"]
    leader = bed.fleet.start_controller(ha_config(bed, postgres_server, postgres_url, "ctl-1"))
    wait_leader(leader, "the controller to lead")

    retirement = bed.fleet.platform(lb=bed.lb).retire(a, agent=bed.agents["A"], notice_s=60)
    wait_for(lambda: a.open_sockets() <= on_a - 40, timeout_s=SETTLE_S, what="A's drain to be under way")
    postgres_server.restart()  # every connection cut at once, as in a crash
    retirement.wait_deleted(SETTLE_S)

    assert app_drain_requests(a) == 1 and retirement.released_by == "controller" and retirement.released_in_time
    assert retirement.agent_metrics is not None
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_drains_requested_total", where="agent") == 1
    wait_leader(leader, "the controller to lead again")
    (drain,) = leader.drains_of("A")
    lines = journal(leader, drain["id"])
    assert (drain["phase"], drain["outcome"]) == ("released", "graceful")
    assert [line["step"] for line in lines].count("drain requested") == 1, "the journal disagrees with the agent"
    assert [line["phase"] for line in lines][-1] == "released"
    assert all(after["previous"] == before["phase"] for before, after in itertools.pairwise(lines)), "a lost step"
