"""The SQLite journal's schema: its whole history as forward migrations, and the checks made before opening.

A journal file carries its schema version in `PRAGMA user_version`. Opening it runs every migration from
that version to ours, in order, in one transaction: a journal is either fully migrated or untouched. The
history is frozen text: never edit a migration that has shipped; add the next one (and map any new column
in `rows.py`). SQLite cannot change a column's type in place, so a migration that retypes a table creates
the new table, copies the rows (ids included), drops the old one and renames the new one (SQLite's own
procedure, https://www.sqlite.org/lang_altertable.html#otheralter), keeping the AUTOINCREMENT sequence so
drain ids and transition seqs go on from where they were.

Refused, with one line (`ConfigError`) and before anything is written to the file: a journal from a newer
drainctl (its version is above ours), and another application's SQLite database (tables we do not know).
sqlite3's own errors are left to the caller (`sqlite.py`), which turns them into ours.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import ConfigError

log = logging.getLogger("drainctl.journal.sqlite_schema")


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history: from `version - 1` to `version`."""

    version: int
    why: str
    statements: tuple[str, ...]
    tables: frozenset[str]
    """The tables a journal of `version` has (besides SQLite's own `sqlite_*`)."""


_V1_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS drains (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance, pool, source, kind, event_id, not_after, rate_per_s, drain_deadline_s, needs_release, refs, """
    """phase, phase_since, reason, outcome, created_at, updated_at, drain_requested_at, force_at, release_by, """
    """release_requested_at, released_at, release_error, sockets_before, sockets_last, sockets_reset, """
    """verified_by, last_error
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
)
"""Version 1, literally as drainctl up to c5cf409 generated it: the `drains` columns untyped, named after the
`Drain` fields in their order (`IF NOT EXISTS`: that code ran it on every open)."""

_V2_DRAINS = """
CREATE TABLE drains_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance TEXT NOT NULL,
    pool TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_id TEXT NOT NULL,
    not_after REAL NOT NULL,
    rate_per_s REAL NOT NULL,
    drain_deadline_s REAL NOT NULL,
    needs_release INTEGER NOT NULL CHECK (needs_release IN (0, 1)),
    refs TEXT NOT NULL DEFAULT '[]',
    phase TEXT NOT NULL DEFAULT 'pending',
    phase_since REAL NOT NULL DEFAULT 0.0,
    reason TEXT,
    outcome TEXT,
    created_at REAL NOT NULL DEFAULT 0.0,
    updated_at REAL NOT NULL DEFAULT 0.0,
    drain_requested_at REAL,
    force_at REAL,
    release_by REAL,
    release_requested_at REAL,
    released_at REAL,
    release_error TEXT,
    sockets_before INTEGER,
    sockets_last INTEGER,
    sockets_reset INTEGER NOT NULL DEFAULT 0,
    verified_by TEXT,
    last_error TEXT
)
"""

_V2_COLUMNS = (
    "id, instance, pool, source, kind, event_id, not_after, rate_per_s, drain_deadline_s, needs_release, refs, "
    "phase, phase_since, reason, outcome, created_at, updated_at, drain_requested_at, force_at, release_by, "
    "release_requested_at, released_at, release_error, sockets_before, sockets_last, sockets_reset, "
    "verified_by, last_error"
)

_TABLES = frozenset({"drains", "events", "transitions"})

_V3_REFS = """
UPDATE drains SET refs = (
    SELECT json_group_array(json_object(
        'source', drains.source, 'handle', handle.value, 'not_after', drains.not_after,
        'released_at', drains.released_at, 'release_error', drains.release_error
    ))
    FROM json_each(drains.refs) AS handle
)
"""
"""Version 3: `refs` was a JSON array of handle strings, all of the episode's own source (the only one an episode
could hold); each becomes `{"source", "handle", "not_after", "released_at", "release_error"}`, its deadline
and release state the episode's (a handle of a released episode was released with it; of one mid-release, it
is released again on resume: releases are idempotent). `[]` stays `[]`; nulls are read as unset (`rows.refs_from`)."""

MIGRATIONS = (
    Migration(
        version=1,
        why="drains, their events and their transitions (drains' columns untyped)",
        statements=tuple(s.strip() for s in _V1_SCHEMA.split(";") if s.strip()),
        tables=_TABLES,
    ),
    Migration(
        version=2,
        why="drains' columns typed, NOT NULL where an episode always has a value",
        statements=(
            _V2_DRAINS.strip(),
            f"INSERT INTO drains_v2 ({_V2_COLUMNS}) SELECT {_V2_COLUMNS} FROM drains",
            "DELETE FROM sqlite_sequence WHERE name = 'drains_v2'",
            "UPDATE sqlite_sequence SET name = 'drains_v2' WHERE name = 'drains'",
            "DROP TABLE drains",
            "ALTER TABLE drains_v2 RENAME TO drains",
            "CREATE INDEX drains_by_instance ON drains (instance, id)",
        ),
        tables=_TABLES,
    ),
    Migration(
        version=3,
        why="each platform handle in drains.refs names its source and its release (episodes of two platforms)",
        statements=(_V3_REFS.strip(),),
        tables=_TABLES,
    ),
)
"""The schema's history, oldest first: MIGRATIONS[n] takes a journal from version n to n + 1."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The version this drainctl writes; a journal of a higher version was written by a newer drainctl."""


def inspect(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the journal at `path`; `ConfigError` for a newer journal or another application's
    database. Only reads: a file that is refused is left as it was."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    tables = _tables(db)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"journal: {str(path)!r} has schema version {version}, this drainctl's is {SCHEMA_VERSION}: "
            "it was written by a newer drainctl (run that one, or point `journal:` at another file)"
        )
    if not _known(version, tables):
        listed = ", ".join(sorted(tables)) or "none"
        raise ConfigError(
            f"journal: {str(path)!r} is not a drainctl journal (schema version {version}, tables: {listed})"
        )
    return version


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the journal at `path` to SCHEMA_VERSION in one transaction; a journal already there is not written.

    Foreign keys must be off meanwhile (SQLite's procedure for rebuilding a table that others reference);
    `PRAGMA foreign_key_check` proves the rebuilt tables still hold together before the commit."""
    if inspect(db, path) == SCHEMA_VERSION:
        return
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("BEGIN IMMEDIATE")
    try:
        version = inspect(db, path)  # again, under the write lock: another controller may have migrated it
        _run(db, path, version)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    _tell(path, version)


def _run(db: sqlite3.Connection, path: Path, version: int) -> None:
    try:
        for migration in MIGRATIONS[version:]:
            for statement in migration.statements:
                db.execute(statement)
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise ConfigError(f"journal: {str(path)!r}: rows that refer to missing rows: {broken[:3]}")
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
    except sqlite3.Error as exc:
        raise ConfigError(
            f"journal: cannot migrate {str(path)!r} from schema version {version} to {SCHEMA_VERSION}: {exc}"
        ) from exc


def _tell(path: Path, version: int) -> None:
    if version == 0:
        log.debug("journal: created %s (schema version %d)", path, SCHEMA_VERSION)
    elif version < SCHEMA_VERSION:
        steps = "; ".join(f"{m.version}: {m.why}" for m in MIGRATIONS[version:])
        log.info("journal: migrated %s from schema version %d to %d (%s)", path, version, SCHEMA_VERSION, steps)


def _tables(db: sqlite3.Connection) -> frozenset[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
    return frozenset(name for (name,) in rows)


def _known(version: int, tables: frozenset[str]) -> bool:
    """Whether `tables` are those of a journal of `version`. Version 0 with some of version 1's tables is a
    journal whose first open was cut short (before c5cf409's code set the version): migration 1 completes it."""
    if version == 0:
        return tables <= MIGRATIONS[0].tables
    return 0 < version <= SCHEMA_VERSION and tables == MIGRATIONS[version - 1].tables
