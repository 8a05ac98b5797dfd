"""Issue 5, ignore-drain path: a server that acknowledges the drain and does nothing is reset within the
no-progress window, long before the drain deadline; its clients move to a healthy server; release follows.
And the other side of the rule: a slow but moving drain is not forced before its deadline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for
from testbed.phoenix import CLOSE_SERVICE_RESTART
from tests.e2e.drain_setup import (
    E2E_BUDGET,
    SETTLE_S,
    app_drain_requests,
    disconnects_from,
    journal,
    start_bed,
    step_at,
)
from tests.support import needs_root

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]


def test_ignored_drain_is_reset_after_the_no_progress_window_well_before_the_deadline(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": "ignore-drain"}, clients_per_server=100)
    assert bed.controller is not None
    on_a = bed.clients_on["A"]

    retirement = bed.platform.retire(bed.servers["A"], agent=bed.agents["A"], notice_s=60)
    retirement.wait_deleted(SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    report = bed.swarm.stop()

    (drain,) = bed.controller.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "forced")
    assert drain["reason"].startswith(f"no progress for {E2E_BUDGET.no_progress_window_s:g} s")
    assert drain["sockets_reset"] >= on_a
    lines = journal(bed.controller, drain["id"])
    requested, reset_done = step_at(lines, "drain requested"), step_at(lines, "reset done")
    assert requested < step_at(lines, "reset requested") < drain["force_at"], "forced by no progress, not deadline"
    assert reset_done - requested < E2E_BUDGET.drain_deadline_s
    assert reset_done <= step_at(lines, "release requested")
    assert retirement.released_by == "controller" and retirement.released_in_time
    assert app_drain_requests(bed.servers["A"]) == 1, "the drain request reached the app, which ignored it"

    from_a = disconnects_from(report, "A")
    assert len(from_a) == on_a and {d["cause"] for d in from_a} == {"reset"}, "A's clients were reset, not closed"
    assert report["servers_at_end"] == {"B": bed.clients}, "every client of A reconnected to the healthy B"
    assert report["offline_s"]["never_rejoined"] == 0


def test_slow_but_moving_drain_runs_until_its_deadline(fleets: MakeFleet) -> None:
    bed = start_bed(fleets(E2E_BUDGET), {"A": None}, clients_per_server=100)
    assert bed.controller is not None
    deadline_s, rate_per_s = 8.0, 5.0  # 100 sockets at 5/s need 20 s: the deadline comes first
    assert E2E_BUDGET.no_progress_window_s < deadline_s

    answer = bed.controller.drain("A", deadline_s=deadline_s, rate_per_s=rate_per_s)
    drain_id = answer["drain"]["id"]
    bed.controller.wait_phase("A", ["released", "failed"], timeout_s=SETTLE_S)
    bed.wait_clients_on("B", bed.clients)
    wait_for(lambda: bed.servers["A"].open_sockets() == 0, timeout_s=SETTLE_S, what="A to hold no socket")
    report = bed.swarm.stop()

    drain = bed.controller.drain_detail(drain_id)["drain"]
    assert (drain["phase"], drain["outcome"]) == ("released", "forced")
    assert drain["reason"].startswith("drain deadline reached"), drain["reason"]
    lines = journal(bed.controller, drain_id)
    assert step_at(lines, "reset requested") >= drain["force_at"], "not forced before its deadline"
    graceful = [d for d in disconnects_from(report, "A") if d["code"] == CLOSE_SERVICE_RESTART]
    reset = [d for d in disconnects_from(report, "A") if d["cause"] == "reset"]
    assert len(graceful) >= rate_per_s * E2E_BUDGET.no_progress_window_s, "the drain kept moving past the window"
    assert len(graceful) + len(reset) == bed.clients_on["A"] and len(reset) > 0
    assert drain["sockets_reset"] >= len(reset), "the kernel count also holds HAProxy's health checks"
