"""A journal written by an older drainctl is migrated at open and its unfinished drains resume; anything else
(a journal from a newer drainctl, a file that is not a journal) is refused with one line and left untouched."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.errors import ConfigError
from controller.core.models import Phase, Ref
from controller.journal import open_journal
from controller.journal.sqlite import SqliteJournal
from controller.journal.sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from tests.controller.engine.fakes import T0, FakeClock, FakeHost, make_world
from tests.support.tasks import async_test

V1_JOURNAL = Path(__file__).with_name("v1_journal.sql")
"""Today's (c5cf409) DDL, literally, and the rows it wrote for A: requested, accepted, counted, in verifying."""

V1_STEPS = [
    (1, "pending", "event accepted"),
    (2, "draining", "drain requested"),
    (3, "verifying", "drain accepted"),
    (4, "verifying", "first count"),
]


def write_v1_journal(path: Path) -> None:
    """The journal file drainctl up to c5cf409 left behind (in WAL mode, as that code set it)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(V1_JOURNAL.read_text())


def snapshot(path: Path) -> dict[str, Any]:
    """Everything a migration could change: version, schema (and its change counter), rows, sequences."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            "version": db.execute("PRAGMA user_version").fetchone()[0],
            "schema_changes": db.execute("PRAGMA schema_version").fetchone()[0],
            "schema": sorted(db.execute("SELECT type, name, sql FROM sqlite_master"), key=str),
            **{table: db.execute(f"SELECT * FROM {table}").fetchall() for table in tables},
        }


@async_test
async def test_a_journal_of_the_previous_schema_is_migrated_and_its_unfinished_drain_resumes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    event_before = snapshot(path)["events"]

    clock = FakeClock(T0 + 2.0)  # the old controller stopped 2 s after the notice, its drain in verifying
    host = FakeHost(clock, sockets=120, behaviour="ignore")
    world = make_world(path, hosts={"A": host}, clock=clock, store=SqliteJournal(path))
    resumed = world.engine.get("A")
    assert resumed is not None and resumed.id == 1 and resumed.phase is Phase.VERIFYING
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.id == 1 and drain.phase is Phase.RELEASED and drain.sockets_reset == 120
    assert host.drains == [], "the drain request journaled before the migration was sent again"
    assert [(r.refs, r.at < drain.not_after) for r in world.releaser.releases] == [(("notice-A-60",), True)]
    lines = world.engine.journal(1)
    assert [(t.seq, str(t.phase), t.step) for t in lines[:4]] == V1_STEPS, "history from before the migration"
    assert [t.seq for t in lines] == list(range(1, len(lines) + 1)), "seqs go on from the migrated journal's"
    assert lines[-1].phase is Phase.RELEASED
    assert snapshot(path)["events"] == event_before

    world.engine.submit(world.notice("A", in_s=60, ref="notice-A-again"))  # a new notice, a handle of its own
    again = world.engine.get("A")
    assert again is not None and again.id == 2, "drain ids go on from the migrated journal's"
    assert world.engine.journal(2)[0].seq == lines[-1].seq + 1
    world.store.close()


def test_the_migrated_schema_is_typed_and_keeps_the_sequences(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:  # drains 2-41 were deleted by hand: ids never reused
        db.execute("UPDATE sqlite_sequence SET seq = 41 WHERE name = 'drains'")
        db.commit()
    before = snapshot(path)
    SqliteJournal(path).close()

    after = snapshot(path)
    assert after["version"] == SCHEMA_VERSION == 3
    assert [_but_refs(row) for row in after["drains"]] == [_but_refs(row) for row in before["drains"]]
    assert after["transitions"] == before["transitions"]
    assert after["sqlite_sequence"] == before["sqlite_sequence"] == [("drains", 41), ("transitions", 4)]
    with contextlib.closing(sqlite3.connect(path)) as db:
        types = {name: (kind, bool(notnull)) for _, name, kind, notnull, *_ in db.execute("PRAGMA table_info(drains)")}
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert types["instance"] == ("TEXT", True) and types["not_after"] == ("REAL", True)
    assert types["sockets_last"] == ("INTEGER", False) and types["needs_release"] == ("INTEGER", True)
    assert all(kind for kind, _ in types.values()), f"untyped columns left: {types}"


REFS = 10
"""The index of `refs` in a `drains` row (migration 3 rewrites it)."""


def _but_refs(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row[:REFS] + row[REFS + 1:]


def _at_version_2(path: Path) -> None:
    """A journal as drainctl wrote it at schema version 2: refs as bare handle strings."""
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in MIGRATIONS[1].statements:
            db.execute(statement)
        db.execute("PRAGMA user_version = 2")
        released = ("INSERT INTO drains (instance, pool, source, kind, event_id, not_after, rate_per_s, "
                    "drain_deadline_s, needs_release, refs, phase, released_at, release_error) VALUES "
                    "('B', 'web', 'azure', 'preempt', 'e-b', 50.0, 1.0, 1.0, 1, ?, ?, ?, ?)")
        db.execute(released, ('["ev-1", "ev-2"]', "released", 40.0, None))
        db.execute(released, ('["ev-3"]', "failed", None, "the platform refused"))
        db.execute(released, ("[]", "released", 41.0, None))
        db.commit()


def test_migration_3_names_each_handles_source_and_release_and_the_unfinished_drain_releases_it_once(
    tmp_path: Path,
) -> None:
    """Every handle a journal of schema 2 holds belongs to its episode's source (the only one it could hold),
    and was released when its episode was: the unfinished drain's handle is released after the migration."""
    path = tmp_path / "journal.sqlite"
    _at_version_2(path)
    with SqliteJournal(path) as journal:
        drains = {d.id: d for d in journal.drains(limit=10)}
    assert drains[1].refs == (Ref("local", "notice-A-60", not_after=drains[1].not_after),)
    assert drains[2].refs == tuple(Ref("azure", handle, 50.0, released_at=40.0) for handle in ("ev-1", "ev-2"))
    assert drains[3].refs == (Ref("azure", "ev-3", 50.0, release_error="the platform refused"),)
    assert drains[4].refs == ()
    assert snapshot(path)["version"] == SCHEMA_VERSION


def test_migration_1_is_the_schema_drainctl_wrote_before_it_had_migrations(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "old.db")) as old:
        old.executescript(V1_JOURNAL.read_text())
        old_schema = sorted(old.execute("SELECT type, name, sql FROM sqlite_master"), key=str)
    with contextlib.closing(sqlite3.connect(tmp_path / "new.db")) as new:
        for statement in MIGRATIONS[0].statements:
            new.execute(statement)
        new_schema = sorted(new.execute("SELECT type, name, sql FROM sqlite_master"), key=str)
    assert new_schema == old_schema


def test_opening_a_migrated_journal_again_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    with caplog.at_level(logging.INFO, logger="drainctl.journal"):
        SqliteJournal(path).close()
        assert [r.getMessage() for r in caplog.records] == [
            f"journal: migrated {path} from schema version 1 to 3 (2: {MIGRATIONS[1].why}; 3: {MIGRATIONS[2].why})"
        ]
        caplog.clear()
        migrated = snapshot(path)
        with SqliteJournal(path) as journal:
            assert [d.id for d in journal.unfinished()] == [1]
        assert caplog.records == [], "a journal already migrated is migrated again"
    assert snapshot(path) == migrated


def test_a_fresh_journal_gets_the_newest_schema(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    open_journal(path).close()
    fresh = snapshot(path)
    write_v1_journal(tmp_path / "old.sqlite")
    SqliteJournal(tmp_path / "old.sqlite").close()
    migrated = snapshot(tmp_path / "old.sqlite")
    assert fresh["version"] == SCHEMA_VERSION
    assert fresh["schema"] == migrated["schema"], "a fresh journal and a migrated one differ"


def test_a_journal_from_a_newer_drainctl_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = snapshot(path)
    with pytest.raises(ConfigError) as refused:
        SqliteJournal(path)
    assert str(refused.value) == (
        f"journal: {str(path)!r} has schema version {SCHEMA_VERSION + 1}, this drainctl's is {SCHEMA_VERSION}: "
        "it was written by a newer drainctl (run that one, or point `journal:` at another file)"
    )
    assert snapshot(path) == before


def _random_bytes(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 16)


def _text_file(path: Path) -> None:
    path.write_text("journal: /var/lib/drainctl/journal.sqlite\n")


def _another_application(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("INSERT INTO users (name) VALUES ('ada')")
        db.commit()


def _ours_at_version_1_plus_theirs(path: Path) -> None:
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_random_bytes, "not an SQLite database"),
        (_text_file, "not an SQLite database"),
        (_another_application, "schema version 0, tables: users"),
        (_ours_at_version_1_plus_theirs, "schema version 1, tables: drains, events, transitions, users"),
    ],
)
def test_a_file_that_is_not_a_journal_is_refused_in_one_line_and_left_as_it_is(
    tmp_path: Path, make: Any, reason: str
) -> None:
    path = tmp_path / "journal.sqlite"
    make(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError) as refused:
        open_journal(path)
    assert str(refused.value) == f"journal: {str(path)!r} is not a drainctl journal ({reason})"
    assert path.read_bytes() == before
    assert not path.with_name("journal.sqlite-wal").exists()


def test_a_migration_that_cannot_complete_leaves_the_journal_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:  # a hand-edited journal: untyped v1 took anything
        db.execute("UPDATE drains SET pool = NULL")
        db.commit()
    before = snapshot(path)
    with pytest.raises(ConfigError, match=r"cannot migrate .* from schema version 1 to 3: NOT NULL .*pool"):
        SqliteJournal(path)
    assert snapshot(path) == before


def test_a_postgres_url_is_not_taken_for_a_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"journal: cannot connect to 'postgresql://db\.invalid/drainctl'"):
        open_journal("postgresql://db.invalid/drainctl")  # a Postgres journal, whose server is not there
    for location in ("mysql://db.internal/drainctl", Path("postgresql://db.internal/drainctl")):
        with pytest.raises(ConfigError, match=r"this drainctl has no (mysql|postgresql) journal; give a file path"):
            open_journal(location)
    assert list(tmp_path.iterdir()) == []


def _newer(path: Path) -> None:
    write_v1_journal(path)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_newer, f"has schema version {SCHEMA_VERSION + 1}, this drainctl's is {SCHEMA_VERSION}"),
        (_random_bytes, "is not a drainctl journal (not an SQLite database)"),
        (_another_application, "is not a drainctl journal (schema version 0, tables: users)"),
    ],
)
def test_drainctl_run_refuses_such_a_journal_with_one_line_and_exit_2(tmp_path: Path, make: Any, problem: str) -> None:
    journal = tmp_path / "journal.sqlite"
    make(journal)
    (tmp_path / "api.token").write_text("secret-token\n")
    config = tmp_path / "controller.yaml"
    api = {"listen": "127.0.0.1:0", "token_file": str(tmp_path / "api.token")}
    config.write_text(yaml.safe_dump({"journal": str(journal), "api": api}))
    ran = subprocess.run(
        [sys.executable, "-c", "from controller.cli import main; main()", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert ran.returncode == 2, ran.stderr
    lines = ran.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"drainctl: journal: {str(journal)!r} {problem}"), ran.stderr
    assert ran.stdout == ""
