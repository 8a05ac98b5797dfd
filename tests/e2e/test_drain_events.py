"""Issue 5, duplicates and disorder: the same event delivered three times, an older notice arriving while
the drain runs, and a stale one arriving after it finished cause one drain, and one drain request at the app."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import SETTLE_S, app_drain_requests, start_bed
from tests.support import SLOW_DRAIN_BUDGET

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_the_same_event_three_times_and_out_of_order_notices_cause_one_drain(fleets: MakeFleet) -> None:
    # 100 sockets at 20/s take 5 s: the drain is still running when the out-of-order notice arrives.
    bed = start_bed(fleets(SLOW_DRAIN_BUDGET), {"A": None}, clients_per_server=100)
    ctl, a, agent = bed.controller, bed.servers["A"], bed.agents["A"]
    assert ctl is not None
    dispositions = []

    retirement = bed.platform.retire(a, agent=agent, notice_s=60)
    dispositions.append(retirement.disposition)
    for _ in range(2):  # the same notice pushed again (a retrying platform), besides the local source's polls
        dispositions.append(ctl.post_event("A", kind="terminate", not_after=retirement.not_after,
                                           notice_id=retirement.notice_id)["disposition"])
    wait_for(lambda: a.open_sockets() < bed.clients_on["A"], timeout_s=SETTLE_S, what="A's drain to start")
    earlier = time.time() + 50  # an older notice with an earlier deadline, delivered late, while A drains
    agent.post_notice("A-older", "terminate", earlier)
    dispositions.append(ctl.post_event("A", kind="terminate", not_after=earlier, notice_id="A-older")["disposition"])
    retirement.wait_deleted(SETTLE_S)
    # After it all, an older copy of a notice the drain already held and released (its handle, an earlier
    # deadline): stale. (A late notice with a handle the drain never held starts a drain of its own, so that
    # handle is released too: tests/controller/engine/test_events.py.)
    stale = ctl.post_event("A", kind="terminate", not_after=earlier - 5, notice_id="A-older")
    dispositions.append(stale["disposition"])
    bed.wait_clients_on("B", bed.clients)
    bed.swarm.stop()

    assert dispositions == ["started", "duplicate", "duplicate", "merged", "stale"]
    (drain,) = ctl.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "graceful")
    assert drain["not_after"] == pytest.approx(earlier), "the earliest deadline of the merged notices wins"
    assert sorted(drain["refs"]) == sorted([retirement.notice_id, "A-older"]), "both notices were released"
    assert agent.process.alive() is False and retirement.released_in_time
    assert app_drain_requests(a) == 1
    polled = ctl.metric("drainctl_events_total", {"source": "local", "disposition": "duplicate"})
    assert polled >= 2, "the pushed copies (and the local source's polled ones) were counted as duplicates"
