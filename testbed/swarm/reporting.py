"""The swarm's report: the JSON contract tests and the demo read, written atomically, and a printed summary.

Report shape (a contract):

    {"clients", "duration_s", "heartbeat_interval_s", "heartbeat_timeout_s",
     "connected_at_end", "servers_at_end": {name: count},
     "connect_attempts", "rejected_503", "rate_limited" (503 with Retry-After: the connect rate limit),
     "refused_draining" (503 from a draining server still in rotation), "no_server_503" (any other 503: a
     load balancer with no server in rotation), "unauthorized", "connect_failures",
     "rate_limited_max_per_client",
     "disconnects": [{"client", "at", "cause", "code", "server", "offline_s"}],
     "offline_s": {"max", "p50", "p99", "count", "never_rejoined"},
     "by_cause": {"close:1012": n, "heartbeat_timeout": n, ...},
     "per_client": [{"client", "joins", "server", "rate_limited"}],
     "loop_lag_s": {"p99", "max", "samples"}, "full_collections"}

`loop_lag_s` is how late the swarm's own event loop ran after every client had joined once (lagging.py):
each offline time may be that much too long. `full_collections` counts the garbage collections the swarm
deferred to moments when every client was connected (collecting.py).

`offline_s` statistics cover the disconnects that rejoined before the end (`count` of them); the others are
`never_rejoined`. Percentiles are nearest-rank.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from testbed.swarm.records import SwarmState


@dataclass(frozen=True)
class EndSnapshot:
    """Who was connected where when the run ended, taken before the swarm closes its sockets."""

    connected: int
    servers: dict[str, int]
    server_by_client: list[str | None]


def nearest_rank(values: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `percent`% of values at or below it."""
    if not values:
        return None
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def offline_summary(offline: Sequence[float | None]) -> dict[str, float | int | None]:
    rejoined = [value for value in offline if value is not None]

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "max": rounded(max(rejoined, default=None)),
        "p50": rounded(nearest_rank(rejoined, 50)),
        "p99": rounded(nearest_rank(rejoined, 99)),
        "count": len(rejoined),
        "never_rejoined": len(offline) - len(rejoined),
    }


def snapshot(state: SwarmState) -> EndSnapshot:
    joined = [client for client in state.clients if client.connection is not None]
    servers = Counter(client.server or "unknown" for client in joined)
    server_by_client = [client.server if client.connection is not None else None for client in state.clients]
    return EndSnapshot(len(joined), dict(sorted(servers.items())), server_by_client)


def build_report(
    state: SwarmState, end: EndSnapshot, *, duration_s: float, heartbeat_interval_s: float, heartbeat_timeout_s: float
) -> dict[str, Any]:
    counts = state.counts
    return {
        "clients": len(state.clients),
        "duration_s": round(duration_s, 3),
        "heartbeat_interval_s": heartbeat_interval_s,
        "heartbeat_timeout_s": heartbeat_timeout_s,
        "connected_at_end": end.connected,
        "servers_at_end": end.servers,
        "connect_attempts": counts.connect_attempts,
        "rejected_503": counts.rejected_503,
        "rate_limited": counts.rate_limited,
        "refused_draining": counts.refused_draining,
        "no_server_503": counts.rejected_503 - counts.rate_limited - counts.refused_draining,
        "unauthorized": counts.unauthorized,
        "connect_failures": counts.connect_failures,
        "rate_limited_max_per_client": max((client.rate_limited for client in state.clients), default=0),
        "disconnects": [disconnect.as_json() for disconnect in state.disconnects],
        "offline_s": offline_summary([disconnect.offline_s for disconnect in state.disconnects]),
        "by_cause": dict(sorted(Counter(disconnect.ending.key for disconnect in state.disconnects).items())),
        "per_client": [
            {"client": client.index, "joins": client.joins, "server": server, "rate_limited": client.rate_limited}
            for client, server in zip(state.clients, end.server_by_client, strict=True)
        ],
    }


def write_atomically(path: Path, report: dict[str, Any]) -> None:
    """Write to a temporary file next to `path`, then rename: readers never see half a report."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=1)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def print_summary(report: dict[str, Any], file: TextIO) -> None:
    """A short human summary of a report (offline times, causes, rejected connects)."""
    table = Table(title="client swarm", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    offline = report["offline_s"]
    servers = ", ".join(f"{name}={count}" for name, count in report["servers_at_end"].items()) or "-"
    rows = [
        ("clients", str(report["clients"])),
        ("connected at end", f"{report['connected_at_end']} ({servers})"),
        ("connect attempts", str(report["connect_attempts"])),
        ("rejected 503 (rate-limited)", f"{report['rejected_503']} ({report['rate_limited']})"),
        ("refused by a draining server", str(report.get("refused_draining", 0))),
        ("503 from a load balancer with no server", str(report.get("no_server_503", 0))),
        ("unauthorized / other failures", f"{report['unauthorized']} / {report['connect_failures']}"),
        ("disconnects", str(len(report["disconnects"]))),
        *((f"  {cause}", str(count)) for cause, count in report["by_cause"].items()),
        ("offline max / p50 / p99", " / ".join(_seconds(offline[key]) for key in ("max", "p50", "p99"))),
        ("never rejoined", str(offline["never_rejoined"])),
    ]
    if "loop_lag_s" in report:
        lag = report["loop_lag_s"]
        rows.append(("swarm's own loop lag p99 / max", " / ".join(_seconds(lag[key]) for key in ("p99", "max"))))
    for row in rows:
        table.add_row(*row)
    Console(file=file, width=100).print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"
