"""`make demo` / `drainctl demo`: the graceful-drain scenario on this machine, with a printed report.

Until the drain controller exists, the demo drains server A by hand through its admin API and shows what
clients and servers saw. Exit code 0 only when every client of A moved to B after a 1012 close and none was
refused by the rate limiter more than once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from controller.budget import Budget
from controller.errors import BudgetError, ConfigError
from testbed.harness import Fleet
from testbed.scenarios.draining import DrainOutcome, DrainScenario, run_drain


def load_budget(path: Path | None, *, option: str = "--budget") -> Budget:
    """The budget in a YAML file (a mapping of timer names to numbers), or the defaults when `path` is None."""
    if path is None:
        return Budget()
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
        return Budget.from_mapping({} if raw is None else raw)
    except BudgetError as exc:
        raise BudgetError(f"{option} {str(path)!r}: {exc}") from exc


def run_demo(budget: Budget, scenario: DrainScenario | None = None) -> int:
    """Run the drain scenario in a fresh fleet, print its report; 0 if the drain kept its promise, else 1."""
    scenario = scenario or DrainScenario()
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]drainctl demo[/]: {scenario.clients} clients on servers A and B behind HAProxy; "
                  f"server A is drained at {scenario.drain_rate_per_s:g} disconnects/s")
    with _sigterm_interrupts(), Fleet(budget) as fleet:
        outcome = run_drain(fleet, scenario, progress=lambda line: console.print(f"  {line}"))
    _print_report(console, outcome)
    problems = outcome.problems()
    for problem in problems:
        console.print(f"[red]FAIL[/] {problem}")
    if not problems:
        console.print(f"[green]OK[/] all {outcome.before['A']} clients of A moved to B after a 1012 close; "
                      "none was rate-limited more than once")
    return 1 if problems else 0


def _print_report(console: Console, outcome: DrainOutcome) -> None:
    servers = Table(title="servers")
    for column in ("server", "sockets before", "sockets after", "drained (1012)", "Prometheus after"):
        servers.add_column(column, justify="right")
    for name in ("A", "B"):
        drained = str(outcome.drained) if name == "A" else "-"
        servers.add_row(name, str(outcome.before[name]), str(outcome.after[name]), drained,
                        f"{outcome.prometheus_after.get(name, float('nan')):g}")
    console.print(servers)
    report: dict[str, Any] = outcome.report
    offline = report["offline_s"]
    clients = Table(title="clients", show_header=False)
    clients.add_column("what")
    clients.add_column("value", justify="right")
    clients.add_row("clients / connected at end", f"{report['clients']} / {report['connected_at_end']}")
    clients.add_row("on each server at end", ", ".join(f"{k}={v}" for k, v in report["servers_at_end"].items()))
    clients.add_row("offline max / p50 / p99", " / ".join(_seconds(offline[k]) for k in ("max", "p50", "p99")))
    clients.add_row("never rejoined", str(offline["never_rejoined"]))
    for cause, count in report["by_cause"].items():
        clients.add_row(f"disconnects {cause}", str(count))
    clients.add_row("connect attempts", str(report["connect_attempts"]))
    clients.add_row("rejected 503 (all reasons)", str(report["rejected_503"]))
    clients.add_row("rate-limited (max per client)",
                    f"{report['rate_limited']} ({report['rate_limited_max_per_client']})")
    console.print(clients)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the fleet runs, so the fleet is torn down either way."""
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
