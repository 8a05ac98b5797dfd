"""Issue 5, a storm: four notices at once with a disruption budget of one. The drains run one at a time,
earliest deadline first, and every server is released before its deadline.

"At once" is made exact: a fifth server, X, is already draining when the storm arrives and holds the only
slot for the no-progress window (it ignores its drain request), so all four notices wait together and the
order they leave the queue is the scheduler's choice alone, not the order they arrived in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from tests.e2e.drain_setup import SETTLE_S, journal, start_bed, step_at
from tests.support import needs_root

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]

PACED = Budget(
    platform_notice_s=120.0, drain_deadline_s=10.0, verify_s=5.0, margin_s=10.0,
    expected_sockets_per_server=200, drain_rate_per_s=20.0,
)
"""40 sockets at 20/s take 2 s: four drains at once would overlap, so one-at-a-time is visible."""
NOTICES_S = {"A": 70.0, "B": 55.0, "C": 80.0, "D": 62.0}
"""Arriving in this order; earliest deadline first means B, D, A, C."""
FALLBACK = {"grace_s": 60.0}
"""The agents wait for the controller longer than the storm takes: a queued drain is the controller's."""


def test_four_notices_with_a_budget_of_one_drain_one_at_a_time_earliest_deadline_first(fleets: MakeFleet) -> None:
    retiring: dict[str, str | None] = {"X": "ignore-drain", **dict.fromkeys(NOTICES_S)}
    bed = start_bed(fleets(PACED), retiring, healthy=("E",), clients_per_server=40, fallback=FALLBACK,
                    controller_options={"max_draining": 1})
    ctl = bed.controller
    assert ctl is not None

    first = bed.platform.retire(bed.servers["X"], agent=bed.agents["X"], notice_s=100)
    ctl.wait_phase("X", ["verifying"], timeout_s=SETTLE_S)
    retirements = {name: bed.platform.retire(bed.servers[name], agent=bed.agents[name], notice_s=notice_s)
                   for name, notice_s in NOTICES_S.items()}
    assert ctl.instance("X")["phase"] == "verifying", "the storm must arrive while X holds the only slot"
    for retirement in [first, *retirements.values()]:
        retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("E", bed.clients)
    bed.swarm.stop()

    windows = {}
    for name in ["X", *NOTICES_S]:
        (drain,) = ctl.drains_of(name)
        lines = journal(ctl, drain["id"])
        done = next(line["at"] for line in lines if line["step"] in ("verified zero", "reset done"))
        windows[name] = (step_at(lines, "drain requested"), done, drain["outcome"])
    assert {windows[name][2] for name in NOTICES_S} == {"graceful"} and windows["X"][2] == "forced"
    order = sorted(windows, key=lambda name: windows[name][0])
    assert order == ["X", "B", "D", "A", "C"], "after X, earliest deadline first, not arrival order"
    for before, after in itertools.pairwise(order):
        assert windows[before][1] <= windows[after][0], f"{after} started draining before {before} was done"
    assert all(r.released_in_time and r.released_by == "controller" for r in [first, *retirements.values()])
