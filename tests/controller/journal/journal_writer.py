"""A controller stand-in that writes to a journal until it is killed (run by test_sqlite.py as a subprocess).

    python -m tests.controller.journal.journal_writer JOURNAL requested   # journal "drain requested" for A, then hang
    python -m tests.controller.journal.journal_writer JOURNAL stream      # journal transitions forever, one line each

Each line on stdout is printed only after its write returned, i.e. is durable.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from controller.core.models import Drain, EventKind, LifecycleEvent, Phase, Ref
from controller.journal.sqlite import SqliteJournal

T0 = 1_700_000_000.0


def _episode(store: SqliteJournal, instance: str, now: float) -> Drain:
    event = LifecycleEvent.create(instance=instance, kind=EventKind.TERMINATE, not_after=now + 60, source="local",
                                  ref=f"notice-{instance}")
    draft = Drain(id=0, instance=instance, pool="web", source="local", kind=event.kind, event_id=event.id,
                  not_after=event.not_after, rate_per_s=500.0, drain_deadline_s=20.0, needs_release=True,
                  refs=(Ref("local", f"notice-{instance}"),), phase_since=now, created_at=now, updated_at=now)
    return store.create(draft, event=event, at=now, step="event accepted")


def _say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def requested(store: SqliteJournal) -> None:
    drain = _episode(store, "A", T0)
    after = dataclasses.replace(drain, phase=Phase.DRAINING, drain_requested_at=T0, force_at=T0 + 20,
                                release_by=T0 + 55, updated_at=T0, phase_since=T0)
    store.record(drain, after, step="drain requested")
    _say(event="drain requested", drain_id=drain.id)
    while True:  # the drain request is "in flight" until SIGKILL
        time.sleep(60)


def stream(store: SqliteJournal) -> None:
    cycle = [Phase.DRAINING, Phase.VERIFYING, Phase.FORCING, Phase.DRAINED, Phase.RELEASED]
    for number in range(1_000_000):
        now = T0 + number
        drain = _episode(store, f"I{number}", now)
        _say(event="created", drain_id=drain.id)
        for phase in cycle:
            after = dataclasses.replace(drain, phase=phase, updated_at=now, phase_since=now)
            drain = store.record(drain, after, step=f"to {phase}")
            _say(event="recorded", drain_id=drain.id, phase=phase.value)


if __name__ == "__main__":
    journal, mode = Path(sys.argv[1]), sys.argv[2]
    {"requested": requested, "stream": stream}[mode](SqliteJournal(journal))
