"""The SQLite journal: every step of every drain, written to one local file before the step is acted on.

A controller killed at any instant (kill -9, power loss) resumes from here: the file is in WAL mode with
`synchronous=FULL`, so a write that returned is on disk. The reconciler writes "drain requested" before it
sends the drain request, and on resume treats a drain in `draining` as sent (it goes on to verifying and
never sends a second one).

Writes are synchronous on purpose: a journal write and the decision it records happen without an `await` in
between, so two reconcile passes of the asyncio loop cannot interleave between "decide" and "write". Each
step is one transaction, and an update names the phase and the `updated_at` of the copy it was computed from
(`WHERE id = ? AND phase = ? AND updated_at = ?`), so a write from a stale copy of an episode (one written since,
e.g. by an event merged into it) is refused rather than applied.

Group commit (`batch()`): the writes of a block are one transaction, made durable by one commit (one fsync)
at its end, each write inside it a savepoint of its own (a refused write rolls back alone). The push intake
uses it so a storm of notices costs one fsync per batch instead of one per notice (`controller/api/
batching.py`); nothing written in a batch may be acted on or answered before the block has returned.

Results after the fact (`after_the_fact()`): a line that records what already happened ("drain accepted",
"verified zero", "released") is committed with `synchronous=NORMAL`: in WAL mode it survives a kill -9 at
once (it is in the WAL, in the OS's cache) and a power loss once the next FULL commit, the next intent, has
flushed the WAL. Losing one to a power loss only makes the resumed controller find it again: the drain was
sent (draining goes on to verifying), the count is taken again, the release is repeated (releases are
idempotent, so "release requested" is one of these too). The other intents ("drain requested", "reset
requested", an event accepted) stay FULL: they are on disk before they are acted on. That took a drain from
five fsyncs to one.

The schema and its migrations are in `sqlite_schema.py`, the row mapping in `rows.py`. sqlite3's errors
never leave this module: opening fails with `ConfigError`, a failed read or write with `JournalError` (a
`TemporaryError`: the step is not taken and is retried).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller.core.errors import ConfigError, InvalidTransition, JournalError
from controller.core.models import ALLOWED_TRANSITIONS, Disposition, Drain, LifecycleEvent, Phase
from controller.journal import sqlite_schema
from controller.journal.reading import JournalReads, Params
from controller.journal.rows import (
    DRAIN_COLUMNS,
    EVENT_COLUMNS,
    drain_row,
    event_row,
)

_INSERT_DRAIN = (
    f"INSERT INTO drains ({', '.join(DRAIN_COLUMNS)}) VALUES ({', '.join(f':{c}' for c in DRAIN_COLUMNS)})"
)
_UPDATE_DRAIN = (
    f"UPDATE drains SET {', '.join(f'{c} = :{c}' for c in DRAIN_COLUMNS)} WHERE id = :id AND phase = :was "
    "AND updated_at = :was_updated_at"
)
_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(f':{c}' for c in EVENT_COLUMNS)})"
)
_INSERT_TRANSITION = (
    "INSERT INTO transitions (drain_id, instance, at, previous, phase, step, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
)



class SqliteJournal(JournalReads):
    """The journal of drain episodes, their events and their transitions in one SQLite file (the `Journal` port).

    Opening creates the file if needed and migrates it to this drainctl's schema (`sqlite_schema.py`); a file
    that cannot be used is a `ConfigError` naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._batching = False
        self._db = _connect(path)
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------------------

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        """Start an episode for `event`: the episode, the event and the first transition, in one transaction."""
        with self._transaction() as db:
            cursor = db.execute(_INSERT_DRAIN, drain_row(draft))
            assert cursor.lastrowid is not None
            drain = replace(draft, id=cursor.lastrowid)
            db.execute(_INSERT_EVENT, event_row(event, at=at, disposition=Disposition.STARTED, drain_id=drain.id))
            _insert_transition(db, drain, None, at, step, detail)
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
        with self._transaction() as db:
            was = {"id": before.id, "was": before.phase.value, "was_updated_at": before.updated_at}
            cursor = db.execute(_UPDATE_DRAIN, {**drain_row(after), **was})
            if cursor.rowcount != 1:
                raise InvalidTransition(f"{before.instance}: drain {before.id} is no longer in {before.phase} as "
                                        f"updated at {before.updated_at} (written since this copy was read)")
            if event is not None:
                row = event_row(event, at=after.updated_at, disposition=disposition or Disposition.MERGED,
                                drain_id=after.id)
                db.execute(_INSERT_EVENT, row)
            _insert_transition(db, after, before.phase, after.updated_at, step, detail)
        return after

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        """Remember an event that started nothing (stale), so it is a duplicate the next time."""
        with self._transaction() as db:
            db.execute(_INSERT_EVENT, event_row(event, at=at, disposition=disposition, drain_id=drain_id))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside is one transaction, committed (durably) once as the block ends; `JournalError`
        when that commit fails, and then none of them was written. Nested: part of the outer batch."""
        if self._batching:
            yield
            return
        self._begin()
        self._batching = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal: batch commit to {str(self.path)!r} failed: {exc}") from exc
            raise
        finally:
            self._batching = False

    @contextmanager
    def after_the_fact(self) -> Iterator[None]:
        """Writes inside commit without waiting for the disk (see the module's docstring); in a batch, the
        batch's commit decides."""
        if self._batching:
            yield
            return
        self._execute_or_fail("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._execute_or_fail("PRAGMA synchronous=FULL")

    # --- plumbing ------------------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Settings, then the checks that only read, then the first writes: a refused file is left untouched."""
        try:
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA synchronous=FULL")
            sqlite_schema.inspect(self._db, self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            sqlite_schema.migrate(self._db, self.path)
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write: its own transaction, or a savepoint of the batch it is in."""
        begin, commit, undo = (("SAVEPOINT step", "RELEASE step", "ROLLBACK TO step") if self._batching
                               else (None, "COMMIT", None))
        if begin is None:
            self._begin()
        else:
            self._execute_or_fail(begin)
        try:
            yield self._db
            self._db.execute(commit)
        except BaseException as exc:
            if undo is not None:
                self._db.execute(undo)
                self._db.execute(commit)
            else:
                self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"journal: write to {str(self.path)!r} failed: {exc}") from exc
            raise

    def _begin(self) -> None:
        self._execute_or_fail("BEGIN IMMEDIATE")

    def _execute_or_fail(self, sql: str) -> None:
        try:
            self._db.execute(sql)
        except sqlite3.Error as exc:
            raise JournalError(f"journal: cannot write to {str(self.path)!r}: {exc}") from exc

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _query(self, sql: str, args: Params = ()) -> list[dict[str, Any]]:
        try:
            cursor = self._db.execute(sql, args)
            cursor.row_factory = sqlite3.Row
            return [dict(row) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise JournalError(f"journal: read of {str(self.path)!r} failed: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"journal: cannot open {str(path)!r}: {exc}") from exc


def _unusable(path: Path, exc: sqlite3.Error) -> ConfigError:
    if getattr(exc, "sqlite_errorname", None) == "SQLITE_NOTADB":  # random bytes, a text file, an encrypted db
        return ConfigError(f"journal: {str(path)!r} is not a drainctl journal (not an SQLite database)")
    return ConfigError(f"journal: cannot open {str(path)!r}: {exc}")


def _insert_transition(
    db: sqlite3.Connection, drain: Drain, previous: Phase | None, at: float, step: str, detail: str | None
) -> None:
    previous_value = previous.value if previous else None
    db.execute(_INSERT_TRANSITION, (drain.id, drain.instance, at, previous_value, drain.phase.value, step, detail))
