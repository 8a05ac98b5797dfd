"""The read half of the journal port, one SQL text for both journals, so SQLite and Postgres cannot drift apart.

Each journal keeps what differs (its connection, its errors, its writes and their locking) and supplies two
things: `PLACEHOLDER`, its driver's positional parameter (`?` for sqlite3, `%s` for psycopg), and `_query`, a
read returning rows as dicts. The queries below are written with `?` and translated once per class; they hold
no literal `?`, so the translation cannot touch anything but parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from controller.core.models import Drain, Transition
from controller.journal.rows import UNFINISHED, drain_from, transition_from

Params = Sequence[Any] | Mapping[str, Any]


class JournalReads(ABC):
    PLACEHOLDER: ClassVar[str] = "?"

    @abstractmethod
    def _query(self, sql: str, args: Params = ()) -> list[dict[str, Any]]:
        """A read, rows as {column: value}; the driver's errors become `JournalError`."""

    def _read(self, sql: str, args: Params = ()) -> list[dict[str, Any]]:
        return self._query(sql.replace("?", self.PLACEHOLDER), args)

    def seen(self, event_id: str) -> bool:
        return bool(self._read("SELECT 1 AS found FROM events WHERE id = ?", (event_id,)))

    def unfinished(self) -> list[Drain]:
        """Every episode with something left to do: the work a restarted controller or a new leader resumes."""
        return [drain_from(row) for row in self._read(UNFINISHED)]

    def latest(self, instance: str) -> Drain | None:
        rows = self._read("SELECT * FROM drains WHERE instance = ? ORDER BY id DESC LIMIT 1", (instance,))
        return drain_from(rows[0]) if rows else None

    def drains(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        """Most recent episodes first."""
        where, args = ("WHERE instance = ?", (instance,)) if instance else ("", ())
        rows = self._read(f"SELECT * FROM drains {where} ORDER BY id DESC LIMIT ?", (*args, limit))
        return [drain_from(row) for row in rows]

    def transitions(
        self, *, drain_id: int | None = None, after_seq: int | None = None, limit: int = 1000
    ) -> list[Transition]:
        """Journal lines in the order they were written: the first `limit` of one episode and/or after
        `after_seq` (an outbox: pass the last seq delivered), or else the most recent `limit`. One connection
        writes them, in seq order, so `after_seq` skips none."""
        if drain_id is None and after_seq is None:
            recent = "SELECT * FROM transitions ORDER BY seq DESC LIMIT ?"
            rows = self._read(f"SELECT * FROM ({recent}) AS recent ORDER BY seq", (limit,))
            return [transition_from(row) for row in rows]
        where = {"drain_id = ?": drain_id, "seq > ?": after_seq}
        clauses = [clause for clause, value in where.items() if value is not None]
        args = [value for value in where.values() if value is not None]
        sql = f"SELECT * FROM transitions WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        return [transition_from(row) for row in self._read(sql, (*args, limit))]

    def events(self, *, instance: str | None = None) -> list[dict[str, Any]]:
        """Every event received (of one instance), oldest first, as its columns."""
        where, args = ("WHERE instance = ?", (instance,)) if instance else ("", ())
        return self._read(f"SELECT * FROM events {where} ORDER BY received_at", args)
