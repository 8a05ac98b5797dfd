"""Drain episodes and journal lines to and from table rows, written out field by field.

The mapping is explicit on purpose: the `drains` table is defined by the migrations (`sqlite_schema.py`), not
by the `Drain` dataclass, so a field added to `Drain` changes nothing on disk until someone writes a
migration and maps the field here (tests/controller/journal/test_rows.py fails loudly until they do).
Rows are dicts keyed by column name, ready for named SQL parameters (`:instance`).

`refs` is a JSON array of objects, one per platform handle: `{"source", "handle", "not_after"}` plus
`released_at` and `release_error` once its release is settled (absent while it is not). Journals of SQLite
schema 2 and Postgres schema 1 held bare handle strings, each of the episode's source: the migrations to
SQLite 3 / Postgres 2 rewrite them in place.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from controller.core.models import Disposition, Drain, EventKind, LifecycleEvent, Outcome, Phase, Ref, Transition

DRAIN_COLUMNS = (
    "instance", "pool", "source", "kind", "event_id", "not_after", "rate_per_s", "drain_deadline_s",
    "needs_release", "refs", "phase", "phase_since", "reason", "outcome", "created_at", "updated_at",
    "drain_requested_at", "force_at", "release_by", "release_requested_at", "released_at", "release_error",
    "sockets_before", "sockets_last", "sockets_reset", "verified_by", "last_error",
)
"""The columns of `drains` besides `id` (which the database assigns), in table order."""

EVENT_COLUMNS = (
    "id", "instance", "kind", "not_after", "source", "ref", "rate_per_s", "drain_deadline_s", "received_at",
    "disposition", "drain_id",
)
"""The columns of `events`, in table order."""


class Row(Protocol):
    """A row as read, by column name: `sqlite3.Row`, a dict (a later journal's driver rows)."""

    def __getitem__(self, column: str, /) -> Any: ...


def drain_row(drain: Drain) -> dict[str, object]:
    """The `drains` row of an episode, keyed by the names of DRAIN_COLUMNS (and `id`)."""
    return {
        "id": drain.id, "instance": drain.instance, "pool": drain.pool, "source": drain.source,
        "kind": drain.kind.value, "event_id": drain.event_id, "not_after": drain.not_after,
        "rate_per_s": drain.rate_per_s, "drain_deadline_s": drain.drain_deadline_s,
        "needs_release": int(drain.needs_release), "refs": refs_text(drain.refs),
        "phase": drain.phase.value, "phase_since": drain.phase_since, "reason": drain.reason,
        "outcome": drain.outcome.value if drain.outcome is not None else None,
        "created_at": drain.created_at, "updated_at": drain.updated_at,
        "drain_requested_at": drain.drain_requested_at, "force_at": drain.force_at, "release_by": drain.release_by,
        "release_requested_at": drain.release_requested_at, "released_at": drain.released_at,
        "release_error": drain.release_error, "sockets_before": drain.sockets_before,
        "sockets_last": drain.sockets_last, "sockets_reset": drain.sockets_reset, "verified_by": drain.verified_by,
        "last_error": drain.last_error,
    }


def drain_from(row: Row) -> Drain:
    """The episode a `drains` row holds."""
    return Drain(
        id=row["id"], instance=row["instance"], pool=row["pool"], source=row["source"],
        kind=EventKind(row["kind"]), event_id=row["event_id"], not_after=row["not_after"],
        rate_per_s=row["rate_per_s"], drain_deadline_s=row["drain_deadline_s"],
        needs_release=bool(row["needs_release"]), refs=refs_from(row["refs"]),
        phase=Phase(row["phase"]), phase_since=row["phase_since"], reason=row["reason"],
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        created_at=row["created_at"], updated_at=row["updated_at"],
        drain_requested_at=row["drain_requested_at"], force_at=row["force_at"], release_by=row["release_by"],
        release_requested_at=row["release_requested_at"], released_at=row["released_at"],
        release_error=row["release_error"], sockets_before=row["sockets_before"],
        sockets_last=row["sockets_last"], sockets_reset=row["sockets_reset"], verified_by=row["verified_by"],
        last_error=row["last_error"],
    )


def refs_text(refs: tuple[Ref, ...]) -> str:
    """The `refs` column of an episode's handles (unset release fields left out)."""
    fields = ("source", "handle", "not_after", "released_at", "release_error")
    items = [{key: value for key in fields if (value := getattr(ref, key)) is not None} for ref in refs]
    return json.dumps(items, separators=(",", ":"))


def refs_from(text: str) -> tuple[Ref, ...]:
    """The handles a `refs` column holds."""
    return tuple(Ref(str(item["source"]), str(item["handle"]), item.get("not_after"), item.get("released_at"),
                     item.get("release_error")) for item in json.loads(text))


def event_row(
    event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None
) -> dict[str, object]:
    """The `events` row of an event as it was received at `at` and what became of it."""
    return {
        "id": event.id, "instance": event.instance, "kind": event.kind.value, "not_after": event.not_after,
        "source": event.source, "ref": event.ref, "rate_per_s": event.rate_per_s,
        "drain_deadline_s": event.drain_deadline_s, "received_at": at, "disposition": disposition.value,
        "drain_id": drain_id,
    }


def transition_from(row: Row) -> Transition:
    """The journal line a `transitions` row holds."""
    return Transition(
        seq=row["seq"], drain_id=row["drain_id"], instance=row["instance"], at=row["at"],
        previous=Phase(row["previous"]) if row["previous"] else None, phase=Phase(row["phase"]),
        step=row["step"], detail=row["detail"],
    )


UNFINISHED = (
    "SELECT * FROM drains WHERE phase NOT IN ('released', 'failed', 'cancelled') "
    "OR (phase IN ('failed', 'cancelled') AND needs_release = 1 AND released_at IS NULL AND release_error IS NULL) "
    "ORDER BY id"
)
"""Every episode with something left to do (`Drain.finished` is False), in both journals' SQL: a failed or
cancelled episode still holding a platform it has not released is resumed too."""
