"""Journal write latency, SQLite (WAL, synchronous=FULL) vs Postgres (real server, fenced writes), p50/p99.

    python -m bench.journal_writes [WRITES]

Each write is one committed step of an episode (`Journal.record`), as the engine makes them; Postgres runs
the harness's server (tests/support/postgres.py) on loopback with the fence on (each write reads the lease row
FOR SHARE), so the figure includes the fence's cost. Prints one JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from controller.core.models import Drain, EventKind, LifecycleEvent, Phase
from controller.core.ports import Journal
from controller.journal.postgres import PostgresJournal
from controller.journal.sqlite import SqliteJournal
from tests.support.postgres import PostgresServer

CYCLE = (Phase.DRAINING, Phase.VERIFYING, Phase.FORCING, Phase.DRAINED, Phase.RELEASED)


def _timed_writes(store: Journal, writes: int) -> list[float]:
    latencies_s: list[float] = []
    number = 0
    while len(latencies_s) < writes:
        number += 1
        event = LifecycleEvent.create(instance=f"I{number}", kind=EventKind.TERMINATE, not_after=1e10,
                                      source="local")
        drain = store.create(Drain(id=0, instance=event.instance, pool="web", source="local", kind=event.kind,
                                   event_id=event.id, not_after=1e10, rate_per_s=1.0, drain_deadline_s=1.0,
                                   needs_release=True), event=event, at=0.0, step="event accepted")
        for phase in CYCLE:
            after = dataclasses.replace(drain, phase=phase, updated_at=float(number))
            began = time.perf_counter()
            drain = store.record(drain, after, step=f"to {phase}")
            latencies_s.append(time.perf_counter() - began)
    return latencies_s


def _summary(latencies_s: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies_s, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 3), "p99_ms": round(cuts[98] * 1000, 3), "writes": len(latencies_s)}


def run(writes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp, SqliteJournal(Path(tmp) / "journal.db") as sqlite:
        result: dict[str, object] = {"sqlite": _summary(_timed_writes(sqlite, writes))}
    server = PostgresServer.start()
    try:
        with PostgresJournal(server.create_database("bench"), password_file=server.password_file) as pg:
            fence = pg.fenced_by("drainctl")
            server.psql("INSERT INTO drainctl_lease VALUES ('drainctl', 'bench', 1, now() + interval '1 h', NULL)",
                        database="bench")
            fence.epoch = 1
            result["postgres_fenced"] = _summary(_timed_writes(pg, writes))
    finally:
        server.stop()
    return result


if __name__ == "__main__":
    print(json.dumps({"journal_writes": run(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)}), flush=True)
