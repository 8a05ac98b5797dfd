"""`make demo` / `drainctl demo`: the incident replayed on this machine, without and with the controller.

Two fleets run the same rolling replacement side by side (`upgrading`): three old reference servers behind
HAProxy are replaced by three new ones under 1,500 clients that have no heartbeat timeout; old2 ignores drain
requests and old3 is stopped with SIGSTOP just before its lifecycle event. Without the controller the platform
deletes each old server when its notice runs out (the incident: clients of the stopped server sit on a silent
socket until then); with it, each old server is drained or reset within seconds and released.

Prints a table per run (per old server: sockets before, drained with 1012, reset, time) and the clients'
offline time, writes a PNG timeline and a JSON summary to `demo-output/`, and exits 0 only if, with the
controller, no client was offline longer than 5 s, none was left stuck, and every release came before its
platform deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from controller.core.budget import Budget
from controller.core.errors import BudgetError, ConfigError
from testbed.harness import Fleet
from testbed.scenarios.outages import OFFLINE_LIMIT_S
from testbed.scenarios.upgrading import RunResult, UpgradePlan, UpgradeRun, run_side_by_side

DEMO_BUDGET = Budget(
    platform_notice_s=30.0,
    drain_deadline_s=10.0,
    verify_s=5.0,
    margin_s=10.0,
    expected_sockets_per_server=5000,
    no_progress_window_s=1.5,
    lb_check_interval_s=0.5,
    lb_unhealthy_threshold=2,
    lb_check_timeout_s=0.5,
)
"""The real timers, except a platform notice of 30 s instead of 5-10 minutes (and a drain deadline and margin
that fit in it) so the incident run ends within the demo's 3 minutes, and a no-progress window of 1.5 s instead
of 3 s (docs/performance.md, "The demo's budget", says why), and HAProxy's `/readyz` checks every 0.5 s,
out after 2 (a wedged server leaves rotation within ~1.5 s; deregistration must fit the short notice)."""
OUTPUT_DIR = Path("demo-output")
"""Where the picture, the summary and each run's process logs go (relative to the working directory)."""
RUN_DIRS = {True: "with-controller", False: "without-controller"}
LEGEND = (
    "  sockets: on the server at its lifecycle event (kernel count). 1012 / reset: its clients that got the graceful "
    "close / a reset or their connection cut by the deletion. stuck: still on it at the end. empty, deleted: time "
    "from its event. released by: who let the platform proceed (none: deleted when its notice ran out). drain: "
    "the controller's outcome."
)
CONSOLE_WIDTH = 120
"""Table width when stdout is not a terminal (rich would assume 80 and wrap every cell)."""


def load_budget(path: Path | None, *, option: str = "--budget", base: Budget = DEMO_BUDGET) -> Budget:
    """`base` with the timers a YAML file sets (a mapping of timer names to numbers); `base` when `path` is None."""
    if path is None:
        return base
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{option}: {str(path)!r}{where}: {problem}") from exc
    try:
        overrides = {} if raw is None else raw
        merged = {**base.as_dict(), **overrides} if isinstance(overrides, Mapping) else overrides
        return Budget.from_mapping(merged)
    except BudgetError as exc:
        raise BudgetError(f"{option} {str(path)!r}: {exc}") from exc


def run_demo(budget: Budget, plan: UpgradePlan | None = None, output: Path = OUTPUT_DIR) -> int:
    """Run both upgrades, print the report, write the picture; 0 if the controller kept its promise, else 1."""
    plan = plan or UpgradePlan()
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else CONSOLE_WIDTH)
    began = time.monotonic()
    console.print(
        f"[bold]drainctl demo[/]: the incident replayed, twice side by side. Each run: old1-old3 and new1-new3 "
        f"behind HAProxy, {plan.clients:,} clients without heartbeat timeout. old2 ignores drain requests, old3 "
        f"is stopped (SIGSTOP) just before its event. Platform notice {budget.platform_notice_s:g} s, "
        f"no-progress window {budget.no_progress_window_s:g} s, drain {budget.drain_rate_per_s:g}/s."
    )

    def progress(line: str) -> None:
        console.print(f"  {line}")

    output = output.resolve()  # the fleets' processes run in their workdirs: every path must be absolute
    for old in (output / name for name in RUN_DIRS.values()):
        shutil.rmtree(old, ignore_errors=True)
    with _sigterm_interrupts(), contextlib.ExitStack() as stack:
        runs = [UpgradeRun(stack.enter_context(Fleet(budget, workdir=output / RUN_DIRS[controlled])), plan,
                           controlled=controlled)
                for controlled in (True, False)]
        for run in runs:
            run.prepare(progress)
        results = run_side_by_side(runs, plan, progress)
    for result in results:
        _print_run(console, result)
    console.print(LEGEND)
    _print_clients(console, results)
    picture = _write_outputs(results, output)
    console.print(f"timeline: {picture}; logs of every process: {output / RUN_DIRS[True]}/, "
                  f"{output / RUN_DIRS[False]}/")
    controlled = next(r for r in results if r.controlled)
    problems = controlled.problems()
    for problem in problems:
        console.print(f"[red]FAIL[/] with the controller: {problem}")
    if not problems:
        console.print(f"[green]OK[/] with the controller no client was offline longer than {OFFLINE_LIMIT_S:g} s "
                      f"(max {controlled.outages.max_s:.1f} s) and every old server was released before its "
                      "platform deadline")
    console.print(f"demo took {time.monotonic() - began:.0f} s")
    return 1 if problems else 0


def _print_run(console: Console, result: RunResult) -> None:
    """Per old server: its sockets at its event, how they ended, and when it was empty and deleted."""
    table = Table(title=f"{result.title}" + (" (cut at its time bound)" if result.bounded else ""))
    for column in ("server", "role", "sockets", "1012", "reset", "stuck", "empty", "deleted", "released by",
                   "drain"):
        table.add_column(column, justify="left" if column in ("server", "role", "released by", "drain") else "right",
                         no_wrap=True)
    for row in result.rows:
        table.add_row(row.server, row.role, str(row.sockets_before), str(row.drained), str(row.reset),
                      str(row.stuck_at_end), _seconds(row.empty_after_s), _seconds(row.deleted_after_s),
                      row.released_by or "none", row.controller_outcome or "none")
    console.print(table)


def _print_clients(console: Console, results: Sequence[RunResult]) -> None:
    table = Table(title=f"clients ({results[0].outages.clients:,} per run)")
    for column in ("run", "offline max", "offline p99", f"offline > {OFFLINE_LIMIT_S:g} s", "stuck at end",
                   "connected at end"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for result in results:
        outages = result.outages
        table.add_row(result.title, _seconds(outages.max_s), _seconds(outages.p99_s), str(outages.over_limit),
                      str(outages.stuck_at_end), f"{result.report['connected_at_end']:,}")
    console.print(table)


def _write_outputs(results: Sequence[RunResult], output: Path) -> Path:
    from testbed.scenarios.timeline import write_png  # matplotlib is slow to import: only when drawing

    output.mkdir(parents=True, exist_ok=True)
    summary = [_summary(result) for result in results]
    (output / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return write_png(results, output / "timeline.png")


def _summary(result: RunResult) -> dict[str, Any]:
    return {
        "run": result.title,
        "bounded": result.bounded,
        "servers": [dataclasses.asdict(row) for row in result.rows],
        "clients": dataclasses.asdict(result.outages),
        "duration_s": round(result.ended_at - result.started_at, 1),
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the fleets run, so they are torn down either way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.stdout.flush()
