"""`drainctl demo --rotation`: the drain in step with the load balancer (issue 15), shown on this machine.

Three short cases, each a fresh fleet: servers A and B behind HAProxy, which learns of a drain only from
`/readyz` and picks a server per new connection round robin (as a cloud load balancer does, blind to open
sockets), every client on A, then A is drained at 500 sockets/s:

1. an operator's drain *without* the out-of-rotation step (the "before"): A turns not ready and starts
   closing at once, so the reconnects of the deregistration window land on A half the time and are refused;
2. the same operator's drain *with* the step, observed through HAProxy's runtime API: no refusal;
3. an Azure-like scale-in with the step: a lifecycle notice for A, which stays in the pool until its
   `/readyz` checks fail (nothing else takes it out): no refusal either.

Prints one table (refused by A, rate limited, HAProxy's own 503s, offline p50/p99, when closing started)
and returns 0 only if the two cases with the step had no refusal and no rate limiting. Times are the
machine's (docs/performance.md measures them properly with bench/rotation.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for
from testbed.swarm.reporting import nearest_rank

ROTATION_BUDGET = Budget(drain_deadline_s=30.0, verify_s=5.0, margin_s=10.0, drain_rate_per_s=500.0,
                         expected_sockets_per_server=10_000, platform_notice_s=600.0, lb_check_interval_s=0.5,
                         lb_unhealthy_threshold=2, lb_check_timeout_s=0.5)
"""Checks every 0.5 s, out after 2, 0.5 s timeout (the demo's own, `lb_deregistration_s` 1.5 s): long
enough that a client's first reconnect (250-500 ms) lands inside the window."""
CLIENTS = 1000
SETTLE_S = 120.0
REJECTED = "drainctl_testbed_connects_rejected_total"
CONSOLE_WIDTH = 120
"""Table width when stdout is not a terminal (rich would assume 80 and wrap every cell)."""


@dataclass(frozen=True)
class Case:
    name: str
    rotation: bool
    scale_in: bool


CASES = (
    Case("operator's drain, no out-of-rotation step (before)", rotation=False, scale_in=False),
    Case("operator's drain, out of rotation first (observed)", rotation=True, scale_in=False),
    Case("Azure-like scale-in, out of rotation first", rotation=True, scale_in=True),
)


def run_rotation_demo(clients: int = CLIENTS, budget: Budget = ROTATION_BUDGET) -> int:
    """Run the three cases, print the table; 0 if the cases with the step had no refusal."""
    console = Console(highlight=False, width=None if sys.stdout.isatty() else CONSOLE_WIDTH)
    console.print(f"[bold]drainctl demo --rotation[/]: A drained at {budget.drain_rate_per_s:g}/s with {clients:,} "
                  f"clients on it; HAProxy checks /readyz every {budget.lb_check_interval_s:g} s, out after "
                  f"{budget.lb_unhealthy_threshold} (deregistration {budget.lb_deregistration_s:g} s), round robin.")
    results = []
    for case in CASES:
        console.print(f"  {case.name} ...")
        results.append(run_case(case, clients, budget))
    console.print(_table(results))
    bad = [r for r in results if r["rotation"] and (r["refused"] or r["rate_limited"])]
    for result in bad:
        console.print(f"[red]FAIL[/] {result['case']}: {result['refused']} refused, {result['rate_limited']} "
                      "rate limited")
    if not bad:
        console.print("[green]OK[/] with the step no reconnect was refused by the draining server or rate limited")
    return 1 if bad else 0


def run_case(case: Case, clients: int, budget: Budget) -> dict[str, Any]:
    """One fresh fleet, every client on A, A drained; what the clients and the servers saw."""
    with Fleet(budget) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b], balance="roundrobin")
        lb.set_server_state("B", "maint")
        lb.wait_state("B", "MAINT")
        agent = fleet.start_agent(a)
        config = fleet.controller_config([agent])
        if case.rotation:
            config["rotation"] = {"enabled": True, "haproxy": {"socket": lb.runtime_api}}
        controller = fleet.start_controller(config)
        swarm = fleet.start_swarm(lb.ws_url, count=clients, duration_s=3600, connect_rate_per_s=1000,
                                  heartbeat_timeout_s=0)
        swarm.wait_joined(timeout_s=SETTLE_S)
        lb.set_server_state("B", "ready")
        lb.wait_state("B", "UP", timeout_s=SETTLE_S)
        if case.scale_in:
            retirement = fleet.platform(controller=controller, lb=lb).retire(
                a, agent=agent, notice_s=budget.platform_notice_s, deregister=False)
        else:
            controller.drain("A", rate_per_s=budget.drain_rate_per_s, deadline_s=budget.drain_deadline_s)
        wait_for(lambda: b.open_sockets() == clients, timeout_s=SETTLE_S, what=f"all {clients} clients on B")
        refused_at_a = None if case.scale_in else int(a.metric(REJECTED, {"reason": "draining"}))
        if case.scale_in:
            retirement.wait_deleted(SETTLE_S)
        (drain,) = controller.drains_of("A")
        lines = controller.drain_detail(drain["id"])["journal"]
        report = swarm.stop()
    return _row(case, report, lines, refused_at_a)


def _row(case: Case, report: dict[str, Any], lines: list[dict[str, Any]], refused_at_a: int | None) -> dict[str, Any]:
    at = {line["step"]: float(line["at"]) for line in sorted(lines, key=lambda line: -line["seq"])}
    offline = [d["offline_s"] for d in report["disconnects"] if d["offline_s"] is not None]
    return {
        "case": case.name,
        "rotation": case.rotation,
        "refused": report["refused_draining"] if refused_at_a is None else max(refused_at_a,
                                                                                report["refused_draining"]),
        "rate_limited": report["rate_limited"],
        "no_server_503": report.get("no_server_503", 0),
        "offline_p50_s": nearest_rank(offline, 50),
        "offline_p99_s": nearest_rank(offline, 99),
        "closing_started_after_s": at["drain accepted"] - at["drain requested"],
    }


def _table(results: list[dict[str, Any]]) -> Table:
    table = Table(title="reconnects while A drains")
    for column in ("case", "refused by A", "rate limited", "HAProxy 503", "offline p50 / p99", "closing after"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for r in results:
        offline = " / ".join("-" if v is None else f"{v:.2f} s" for v in (r["offline_p50_s"], r["offline_p99_s"]))
        table.add_row(r["case"], str(r["refused"]), str(r["rate_limited"]), str(r["no_server_503"]), offline,
                      f"{r['closing_started_after_s']:.2f} s")
    return table
