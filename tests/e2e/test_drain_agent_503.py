"""Issue 9, case 2 end to end: an agent that answers 503 (its own temporary failure, with Retry-After) to the
first reset and to the first release. The controller retries both: the sockets are reset, the kernel count is
zero at release, and the notice is released once, by the controller, before its deadline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.agent_faults import FAULT_DELAY_S
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S, disconnects_from, journal, start_bed, step_at
from tests.support import needs_root

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]


def test_agent_503_to_first_reset_and_release_is_retried_and_released_once(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": "ignore-drain"}, clients_per_server=20,
                    fail_first={"resets": 1, "releases": 1})
    assert bed.controller is not None
    on_a = bed.clients_on["A"]

    retirement = bed.platform.retire(bed.servers["A"], agent=bed.agents["A"], notice_s=60)
    retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    (drain,) = bed.controller.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "forced")
    assert drain["sockets_reset"] >= on_a
    assert drain["sockets_last"] == 0, "the kernel count was zero at release"
    lines = journal(bed.controller, drain["id"])
    waited_s = FAULT_DELAY_S - 0.05  # the retry waits at least the Retry-After (a little slack for timers)
    assert step_at(lines, "reset done") - step_at(lines, "reset requested") >= waited_s, "reset retried later"
    assert step_at(lines, "verified zero after reset") <= step_at(lines, "release requested")
    assert step_at(lines, "released") - step_at(lines, "release requested") >= waited_s, "release retried later"
    assert step_at(lines, "released") < retirement.not_after
    log_text = bed.controller.log_text()  # the engine logs each retry (the journal keeps steps, not attempts)
    assert "POST /v1/reset: HTTP 503: testbed fault: reset refused on purpose (retry 1 in" in log_text
    assert "/release: HTTP 503: testbed fault: release refused on purpose (retry 1 in" in log_text

    assert retirement.released_by == "controller" and retirement.released_in_time
    assert retirement.agent_metrics is not None
    released = {by: metric_sum(retirement.agent_metrics, "drainctl_agent_notices_released_total", {"by": by},
                               where="agent") for by in ("controller", "agent")}
    assert released == {"controller": 1, "agent": 0}, "released exactly once, by the controller"
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_resets_total", {"by": "controller"},
                      where="agent") >= 1

    from_a = disconnects_from(report, "A")
    assert len(from_a) == on_a and {d["cause"] for d in from_a} == {"reset"}, "A's clients were reset"
    assert report["servers_at_end"] == {"B": bed.clients} and report["offline_s"]["never_rejoined"] == 0
