"""The journal: every step of every drain, written to SQLite before the step is acted on.

A controller killed at any instant (kill -9, power loss) resumes from here: the file is in WAL mode with
`synchronous=FULL`, so a write that returned is on disk. The reconciler writes "drain requested" before it
sends the drain request, and on resume treats a drain in `draining` as sent (it goes on to verifying and
never sends a second one).

Writes are synchronous on purpose: a journal write and the decision it records happen without an `await` in
between, so two reconcile passes of the asyncio loop cannot interleave between "decide" and "write".
sqlite3's errors never leave this module: opening fails with `ConfigError`, a failed write with `JournalError`
(a `TemporaryError`: the step is not taken and is retried).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from controller.core.errors import ConfigError, PermanentError, TemporaryError
from controller.core.models import (
    ALLOWED_TRANSITIONS,
    Disposition,
    Drain,
    EventKind,
    LifecycleEvent,
    Outcome,
    Phase,
    Transition,
)

SCHEMA_VERSION = 1

_DRAIN_FIELDS = [f.name for f in dataclasses.fields(Drain)]
_DRAIN_COLUMNS = [name for name in _DRAIN_FIELDS if name != "id"]

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS drains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(_DRAIN_COLUMNS)}
);
CREATE INDEX IF NOT EXISTS drains_by_instance ON drains (instance, id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    not_after REAL NOT NULL,
    source TEXT NOT NULL,
    ref TEXT,
    rate_per_s REAL,
    drain_deadline_s REAL,
    received_at REAL NOT NULL,
    disposition TEXT NOT NULL,
    drain_id INTEGER REFERENCES drains (id)
);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    drain_id INTEGER NOT NULL REFERENCES drains (id),
    instance TEXT NOT NULL,
    at REAL NOT NULL,
    previous TEXT,
    phase TEXT NOT NULL,
    step TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS transitions_by_drain ON transitions (drain_id, seq);
"""


class JournalError(TemporaryError):
    """The journal could not be written; the step it would have recorded is not taken."""


class InvalidTransition(PermanentError):
    """A phase change the state machine does not allow, or a write based on a stale copy of the episode."""


class Store:
    """The SQLite journal of drain episodes, their events and their transitions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"journal: cannot open {str(path)!r}: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------------------

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        """Start an episode for `event`: the episode, the event and the first transition, in one transaction."""
        row = _drain_row(draft)
        with self._transaction() as db:
            cursor = db.execute(
                f"INSERT INTO drains ({', '.join(_DRAIN_COLUMNS)}) VALUES ({', '.join('?' * len(_DRAIN_COLUMNS))})",
                [row[name] for name in _DRAIN_COLUMNS],
            )
            assert cursor.lastrowid is not None
            drain = dataclasses.replace(draft, id=cursor.lastrowid)
            self._insert_event(db, event, at, Disposition.STARTED, drain.id)
            self._insert_transition(db, drain, None, at, step, detail)
        return drain

    def record(
        self,
        before: Drain,
        after: Drain,
        *,
        step: str,
        detail: str | None = None,
        event: LifecycleEvent | None = None,
        disposition: Disposition | None = None,
    ) -> Drain:
        """Journal one step of an episode (and the event that caused it, if any) before it is acted on."""
        if after.phase is not before.phase and after.phase not in ALLOWED_TRANSITIONS[before.phase]:
            raise InvalidTransition(f"{before.instance}: {before.phase} -> {after.phase} is not a valid transition")
        row = _drain_row(after)
        with self._transaction() as db:
            cursor = db.execute(
                f"UPDATE drains SET {', '.join(f'{name} = ?' for name in _DRAIN_COLUMNS)} WHERE id = ? AND phase = ?",
                [*(row[name] for name in _DRAIN_COLUMNS), before.id, before.phase.value],
            )
            if cursor.rowcount != 1:
                raise InvalidTransition(f"{before.instance}: drain {before.id} is no longer in {before.phase}")
            if event is not None:
                self._insert_event(db, event, after.updated_at, disposition or Disposition.MERGED, after.id)
            self._insert_transition(db, after, before.phase, after.updated_at, step, detail)
        return after

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        """Remember an event that started nothing (stale), so it is a duplicate the next time."""
        with self._transaction() as db:
            self._insert_event(db, event, at, disposition, drain_id)

    # --- reading -------------------------------------------------------------------------------------------

    def seen(self, event_id: str) -> bool:
        row = self._query("SELECT 1 FROM events WHERE id = ?", (event_id,))
        return bool(row)

    def unfinished(self) -> list[Drain]:
        """Every episode with something left to do, the work a restarted controller resumes."""
        rows = self._query(
            "SELECT * FROM drains WHERE phase NOT IN ('released', 'failed') "
            "OR (phase = 'failed' AND needs_release AND released_at IS NULL AND release_error IS NULL) ORDER BY id"
        )
        return [_drain_from(row) for row in rows]

    def latest(self, instance: str) -> Drain | None:
        rows = self._query("SELECT * FROM drains WHERE instance = ? ORDER BY id DESC LIMIT 1", (instance,))
        return _drain_from(rows[0]) if rows else None

    def drains(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        """Most recent episodes first."""
        where, args = ("WHERE instance = ?", (instance,)) if instance else ("", ())
        rows = self._query(f"SELECT * FROM drains {where} ORDER BY id DESC LIMIT ?", (*args, limit))
        return [_drain_from(row) for row in rows]

    def transitions(self, *, drain_id: int | None = None, limit: int = 1000) -> list[Transition]:
        """Journal lines in the order they were written (of one episode, or the most recent `limit`)."""
        if drain_id is not None:
            rows = self._query("SELECT * FROM transitions WHERE drain_id = ? ORDER BY seq LIMIT ?", (drain_id, limit))
        else:
            recent = "SELECT * FROM transitions ORDER BY seq DESC LIMIT ?"
            rows = self._query(f"SELECT * FROM ({recent}) ORDER BY seq", (limit,))
        return [_transition_from(row) for row in rows]

    def events(self, *, instance: str | None = None) -> list[dict[str, Any]]:
        where, args = ("WHERE instance = ?", (instance,)) if instance else ("", ())
        return [dict(row) for row in self._query(f"SELECT * FROM events {where} ORDER BY received_at", args)]

    # --- plumbing ------------------------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(f"journal: {str(self.path)!r} has schema {version}, newer than this drainctl's")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise JournalError(f"journal: cannot write to {str(self.path)!r}: {exc}") from exc
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal: write to {str(self.path)!r} failed: {exc}") from exc
            raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"journal: read of {str(self.path)!r} failed: {exc}") from exc

    @staticmethod
    def _insert_event(
        db: sqlite3.Connection, event: LifecycleEvent, at: float, disposition: Disposition, drain_id: int | None
    ) -> None:
        db.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id, event.instance, event.kind.value, event.not_after, event.source, event.ref,
                event.rate_per_s, event.drain_deadline_s, at, disposition.value, drain_id,
            ),
        )

    @staticmethod
    def _insert_transition(
        db: sqlite3.Connection, drain: Drain, previous: Phase | None, at: float, step: str, detail: str | None
    ) -> None:
        db.execute(
            "INSERT INTO transitions (drain_id, instance, at, previous, phase, step, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (drain.id, drain.instance, at, previous.value if previous else None, drain.phase.value, step, detail),
        )


def _drain_row(drain: Drain) -> dict[str, Any]:
    row = dataclasses.asdict(drain)
    row["refs"] = json.dumps(list(drain.refs))
    row["needs_release"] = int(drain.needs_release)
    for name in ("phase", "kind", "outcome"):
        value = row[name]
        row[name] = value.value if value is not None else None
    return row


def _drain_from(row: sqlite3.Row) -> Drain:
    values = {name: row[name] for name in _DRAIN_FIELDS}
    values["refs"] = tuple(json.loads(values["refs"]))
    values["needs_release"] = bool(values["needs_release"])
    values["phase"] = Phase(values["phase"])
    values["kind"] = EventKind(values["kind"])
    values["outcome"] = Outcome(values["outcome"]) if values["outcome"] else None
    return Drain(**values)


def _transition_from(row: sqlite3.Row) -> Transition:
    return Transition(
        seq=row["seq"],
        drain_id=row["drain_id"],
        instance=row["instance"],
        at=row["at"],
        previous=Phase(row["previous"]) if row["previous"] else None,
        phase=Phase(row["phase"]),
        step=row["step"],
        detail=row["detail"],
    )
