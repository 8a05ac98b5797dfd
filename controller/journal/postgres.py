"""The Postgres journal: the journal two controllers share (DESIGN.md §9), beside the embedded SQLite one.

Same port, same rows (`rows.py`), same rules as `sqlite.py`: each step is one transaction committed before the
call returns (so before it is acted on), and an update names the phase and `updated_at` of the copy it was
computed from, so a write from a stale copy is refused (`InvalidTransition`).

Why a synchronous connection (psycopg 3, not its async API, and no pool): the Journal port is synchronous on
purpose, a decision and its journal line happen without an `await` in between, so two reconcile passes cannot
interleave between "decide" and "write". The engine calls the journal from one thread, one call at a time, so
one connection is all it can use; a pool would only add connections that wait. The lease is renewed on its own
(async) connection (`leasing.py`), so a slow journal write does not hold up a renewal's network round trip.
The cost: while a write waits for Postgres the event loop waits too; the connection's timeouts bound that.

The fence: with a leader election, every write first reads the lease row `FOR SHARE` in the same transaction
and goes on only when its epoch is the one this controller holds (`Fence.epoch`). The share lock is held to the
commit, so a standby's takeover (an UPDATE of that row) waits for the write, and a write after the takeover
sees the new epoch and is refused: `JournalFenced`, logged, counted, and told to the elector, which steps down.

A lost connection is reopened by the next call; the failed call raises `JournalError` (temporary: the step is
not taken and is retried). The password is never in the URL: it comes from `password_file` or from libpq's own
PGPASSWORD / PGPASSFILE (~/.pgpass).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from controller.core.errors import ConfigError, InvalidTransition, JournalError
from controller.core.fencing import Fence, JournalFenced
from controller.core.models import ALLOWED_TRANSITIONS, Disposition, Drain, LifecycleEvent, Phase
from controller.journal import postgres_schema
from controller.journal.reading import JournalReads, Params
from controller.journal.rows import (
    DRAIN_COLUMNS,
    EVENT_COLUMNS,
    drain_row,
    event_row,
)

log = logging.getLogger("drainctl.journal")

_INSERT_DRAIN = (
    f"INSERT INTO drains ({', '.join(DRAIN_COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in DRAIN_COLUMNS)}) "
    "RETURNING id"
)
_UPDATE_DRAIN = (
    f"UPDATE drains SET {', '.join(f'{c} = %({c})s' for c in DRAIN_COLUMNS)} WHERE id = %(id)s "
    "AND phase = %(was)s AND updated_at = %(was_updated_at)s"
)
_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(f'%({c})s' for c in EVENT_COLUMNS)}) "
    "ON CONFLICT (id) DO NOTHING"
)
_INSERT_TRANSITION = (
    "INSERT INTO transitions (drain_id, instance, at, previous, phase, step, detail) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_FENCE = "SELECT epoch FROM drainctl_lease WHERE name = %s FOR SHARE"

CONNECT_TIMEOUT_S = 3
SESSION_OPTIONS = "-c statement_timeout=5000 -c lock_timeout=3000 -c idle_in_transaction_session_timeout=5000"
"""No statement, lock wait or abandoned transaction holds the journal (and the lease row's lock) for long."""
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
              "tcp_user_timeout": 4000}
"""A half-open connection (packets dropped, no RST) is declared dead in seconds, not the kernel's hours."""



def connection_settings(url: str, password_file: Path | None) -> dict[str, Any]:
    """libpq keywords for `url`: `ConfigError` when the URL holds a password or the password file is unreadable."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"journal: not a usable postgresql:// URL: {exc}") from exc
    if "password" in parts:
        raise ConfigError("journal: the URL holds a password; put it in journal_password_file (or PGPASSFILE)")
    settings: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "options": SESSION_OPTIONS, **KEEPALIVES}
    if password_file is not None:
        try:
            settings["password"] = password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"journal_password_file: cannot read {str(password_file)!r}: {exc.strerror}") from exc
    return settings


def where(url: str) -> str:
    """The URL as it may be logged (it holds no password: `connection_settings` refuses one)."""
    return repr(url)


class PostgresJournal(JournalReads):
    """The journal of drain episodes in a Postgres database (the `Journal` port), fenced by `fence` if given."""

    PLACEHOLDER = "%s"

    def __init__(self, url: str, *, password_file: Path | None = None, fence: Fence | None = None) -> None:
        self.url = url
        self.fence = fence
        self.connection_settings = connection_settings(url, password_file)
        """libpq keywords besides the URL (the password among them: never log these)."""
        self._db: psycopg.Connection[dict[str, Any]] | None = None
        try:
            postgres_schema.migrate(self._connection(), where(url))
        except psycopg.Error as exc:
            self.close()
            raise ConfigError(f"journal: cannot open {where(url)}: {_first_line(exc)}") from exc
        except JournalError as exc:
            raise ConfigError(str(exc)) from exc

    def fenced_by(self, lease: str) -> Fence:
        """From now on every write needs the current epoch of lease row `lease` (the elector sets it)."""
        self.fence = Fence(lease)
        return self.fence

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------------------

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        """Start an episode for `event`: the episode, the event and the first transition, in one transaction."""
        with self._transaction() as db:
            row = db.execute(_INSERT_DRAIN, drain_row(draft)).fetchone()
            assert row is not None
            drain = replace(draft, id=int(row["id"]))
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
            if db.execute(_UPDATE_DRAIN, {**drain_row(after), **was}).rowcount != 1:
                raise InvalidTransition(f"{before.instance}: drain {before.id} is no longer in {before.phase} as "
                                        f"updated at {before.updated_at} (written since this copy was read)")
            if event is not None:
                db.execute(_INSERT_EVENT, event_row(event, at=after.updated_at, drain_id=after.id,
                                                    disposition=disposition or Disposition.MERGED))
            _insert_transition(db, after, before.phase, after.updated_at, step, detail)
        return after

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        """Remember an event that started nothing (stale), so it is a duplicate the next time."""
        with self._transaction() as db:
            db.execute(_INSERT_EVENT, event_row(event, at=at, disposition=disposition, drain_id=drain_id))

    # --- plumbing ------------------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        db = self._db
        if db is not None and not db.closed and not db.broken:
            return db
        self.close()
        try:
            self._db = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, **self.connection_settings)
        except psycopg.Error as exc:
            raise JournalError(f"journal: cannot connect to {where(self.url)}: {_first_line(exc)}") from exc
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        db = self._connection()
        try:
            with db.transaction():
                self._check_fence(db)
                yield db
        except psycopg.Error as exc:
            raise JournalError(f"journal: write to {where(self.url)} failed: {_first_line(exc)}") from exc

    def _check_fence(self, db: psycopg.Connection[dict[str, Any]]) -> None:
        fence = self.fence
        if fence is None:
            return
        held = fence.epoch
        row = db.execute(_FENCE, (fence.lease,)).fetchone()
        current = row["epoch"] if row else None
        if held is None or current != held:
            fence.refused()
            log.error("journal: write refused by the fence: this controller's epoch is %s, the lease's is %s "
                      "(another controller leads); stepping down", held, current)
            raise JournalFenced(f"journal: write refused: epoch {held} is not the lease's current {current}")

    def _query(self, sql: str, args: Params = ()) -> list[dict[str, Any]]:
        """A read; one that finds the connection dead (the server restarted) is tried once more on a new
        connection, since reading twice changes nothing."""
        for attempt in (1, 2):
            db = self._connection()
            try:
                return db.execute(sql.encode(), args).fetchall()
            except psycopg.OperationalError as exc:
                if attempt == 2 or not db.broken:
                    raise JournalError(f"journal: read of {where(self.url)} failed: {_first_line(exc)}") from exc
            except psycopg.Error as exc:
                raise JournalError(f"journal: read of {where(self.url)} failed: {_first_line(exc)}") from exc
        raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _insert_transition(
    db: psycopg.Connection[dict[str, Any]], drain: Drain, previous: Phase | None, at: float, step: str,
    detail: str | None,
) -> None:
    previous_value = previous.value if previous else None
    db.execute(_INSERT_TRANSITION, (drain.id, drain.instance, at, previous_value, drain.phase.value, step, detail))
