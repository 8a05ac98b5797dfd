"""The row mapping covers exactly the fields of `Drain`: a field added without a migration fails here, loudly."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from controller.core.models import Drain, EventKind, LifecycleEvent, Outcome, Phase, Ref
from controller.journal.rows import DRAIN_COLUMNS, drain_row
from controller.journal.sqlite import SqliteJournal

TWO_SOURCES = (Ref("azure", "ev-1", released_at=104.7), Ref("local", "ev-2", release_error="refused"))
"""Two platforms' handles, one released and one given up."""

EVERYTHING_SET = Drain(
    id=7, instance="A", pool="web", source="azure", kind=EventKind.PREEMPT, event_id="e-1", not_after=160.5,
    rate_per_s=250.0, drain_deadline_s=12.5, needs_release=True, refs=TWO_SOURCES, phase=Phase.DRAINED,
    phase_since=104.25, reason="no progress for 3 s", outcome=Outcome.FORCED, created_at=100.0, updated_at=104.25,
    drain_requested_at=100.5, force_at=103.0, release_by=150.0, release_requested_at=104.5, released_at=104.75,
    release_error="the platform refused", sockets_before=1200, sockets_last=7, sockets_reset=7,
    verified_by="kernel", last_error="agent timed out",
)
"""An episode whose every field differs from its default, so a field the journal drops cannot go unseen."""


def test_the_journal_stores_every_field_of_a_drain_and_nothing_else() -> None:
    fields = [field.name for field in dataclasses.fields(Drain)]
    missing = sorted(set(fields) - {"id", *DRAIN_COLUMNS})
    assert not missing, (
        f"Drain has fields the journal does not store: {missing}. Add a migration to "
        "controller/journal/sqlite_schema.py and map the fields in controller/journal/rows.py"
    )
    assert sorted(DRAIN_COLUMNS) == sorted(set(fields) - {"id"}), "rows.py maps columns Drain does not have"
    assert set(drain_row(EVERYTHING_SET)) == {"id", *DRAIN_COLUMNS}


def test_the_newest_schema_has_exactly_the_mapped_columns(tmp_path: Path) -> None:
    SqliteJournal(tmp_path / "journal.db").close()
    with sqlite3.connect(tmp_path / "journal.db") as db:
        columns = tuple(row[1] for row in db.execute("PRAGMA table_info(drains)"))
    assert columns == ("id", *DRAIN_COLUMNS)


def test_an_episode_with_every_field_set_reads_back_as_it_was_written(tmp_path: Path) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Drain) if f.default is not dataclasses.MISSING}
    assert all(getattr(EVERYTHING_SET, name) != value for name, value in defaults.items()), "set every field"
    event = LifecycleEvent.create(instance="A", kind=EventKind.PREEMPT, not_after=160.5, source="azure", ref="ev-1")
    draft = Drain(id=0, instance="A", pool="web", source="azure", kind=event.kind, event_id=event.id,
                  not_after=160.5, rate_per_s=250.0, drain_deadline_s=12.5, needs_release=True)
    with SqliteJournal(tmp_path / "journal.db") as journal:
        created = journal.create(draft, event=event, at=100.0, step="event accepted")
        full = dataclasses.replace(EVERYTHING_SET, id=created.id, phase=Phase.FORCING)
        journal.record(created, full, step="reset requested")
        assert journal.latest("A") == full
        assert journal.unfinished() == [full]
