"""The Postgres journal on a real server: the fence, a restart of the server, and what it refuses to open.

The journal's port contract runs against both implementations in test_sqlite.py (`open_store`); these are the
parts only a shared journal has.
"""

from __future__ import annotations

import dataclasses

import pytest

from controller.core.errors import ConfigError, JournalError
from controller.core.fencing import JournalFenced
from controller.core.models import Drain, EventKind, LifecycleEvent, Phase, Ref
from controller.journal import open_journal
from controller.journal.postgres import PostgresJournal
from controller.journal.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from tests.support.postgres import PostgresServer
from tests.support.waiting import wait_until


def _created(store: PostgresJournal, instance: str = "A") -> Drain:
    event = LifecycleEvent.create(instance=instance, kind=EventKind.TERMINATE, not_after=100.0, source="local")
    draft = Drain(id=0, instance=instance, pool="web", source="local", kind=event.kind, event_id=event.id,
                  not_after=100.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True)
    return store.create(draft, event=event, at=0.0, step="event accepted")


def _journal(server: PostgresServer, url: str) -> PostgresJournal:
    return PostgresJournal(url, password_file=server.password_file)


def test_a_url_with_a_password_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="the URL holds a password; put it in journal_password_file") as caught:
        open_journal("postgresql://drainctl:s3cret@db.internal/drainctl")
    assert "s3cret" not in str(caught.value)


def test_a_wrong_password_is_a_config_error_naming_the_journal(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    wrong = postgres_server.root / "wrong-password"
    wrong.write_text("not-the-password\n")
    with pytest.raises(ConfigError, match=r"journal: cannot (open|connect to) 'postgresql://drainctl@"):
        open_journal(postgres_url, password_file=wrong)


def test_a_write_with_a_deposed_epoch_is_refused_by_the_database(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with _journal(postgres_server, postgres_url) as store:
        fence = store.fenced_by("drainctl")
        stepped_down: list[bool] = []
        fence.on_refused(lambda: stepped_down.append(True))
        postgres_server.psql("INSERT INTO drainctl_lease VALUES ('drainctl', 'a', 7, now() + interval '1 h', NULL)",
                             database=postgres_url.rsplit("/", 1)[1])
        fence.epoch = 7
        drain = _created(store)
        postgres_server.psql("UPDATE drainctl_lease SET holder = 'b', epoch = 8",  # a standby took over
                             database=postgres_url.rsplit("/", 1)[1])
        with pytest.raises(JournalFenced, match="epoch 7 is not the lease's current 8"):
            store.record(drain, dataclasses.replace(drain, phase=Phase.DRAINING), step="drain requested")
        assert stepped_down == [True] and fence.epoch is None and fence.refused_total == 1
        assert store.latest("A") == drain, "the refused step was written anyway"
        with pytest.raises(JournalFenced):
            _created(store, "B")
        assert store.latest("B") is None


def test_the_journal_reconnects_after_the_server_restarts_and_keeps_every_step(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    with _journal(postgres_server, postgres_url) as store:
        drain = _created(store)
        postgres_server.restart()
        moved = dataclasses.replace(drain, phase=Phase.DRAINING)

        def written() -> bool:
            try:
                store.record(drain, moved, step="drain requested")
            except JournalError:
                return False  # the old connection died with the server: this step was not taken
            return True

        wait_until(written, what="a journal write after the restart")
        assert [t.step for t in store.transitions(drain_id=drain.id)] == ["event accepted", "drain requested"]


def test_a_journal_of_a_newer_drainctl_is_refused_untouched(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    _journal(postgres_server, postgres_url).close()
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.psql("UPDATE drainctl_schema SET version = 99", database=database)
    with pytest.raises(ConfigError, match=f"schema version 99, this drainctl's is {SCHEMA_VERSION}"):
        _journal(postgres_server, postgres_url)
    assert postgres_server.psql("SELECT version FROM drainctl_schema", database=database).strip() == "99"


def test_a_journal_of_schema_1_gets_each_handles_source_and_release(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Migration 2: refs held bare handle strings, each of the episode's own source; each becomes a handle naming
    that source and the episode's release (an unfinished episode's handle is released again: idempotent)."""
    database = postgres_url.rsplit("/", 1)[1]
    statements = [s.replace("\n", " ") for s in MIGRATIONS[0].statements]
    columns = "instance, pool, source, kind, event_id, not_after, rate_per_s, drain_deadline_s, needs_release, refs"
    statements += [
        "CREATE TABLE drainctl_schema (version integer NOT NULL)", "INSERT INTO drainctl_schema VALUES (1)",
        f"INSERT INTO drains ({columns}, phase, released_at) VALUES "
        "('A', 'web', 'azure', 'preempt', 'e-a', 50.0, 1.0, 1.0, 1, '[\"ev-1\", \"ev-2\"]', 'released', 40.0)",
        f"INSERT INTO drains ({columns}) VALUES ('B', 'web', 'local', 'terminate', 'e-b', 60.0, 1.0, 1.0, 1, "
        "'[\"n-1\"]')",
        f"INSERT INTO drains ({columns}) VALUES ('C', 'web', 'manual', 'manual', 'e-c', 60.0, 1.0, 1.0, 0, '[]')",
    ]
    postgres_server.psql(";\n".join(statements) + ";", database=database)
    with _journal(postgres_server, postgres_url) as store:
        drains = {d.instance: d for d in store.drains(limit=10)}
        assert [d.instance for d in store.unfinished()] == ["B", "C"]
    assert drains["A"].refs == tuple(Ref("azure", handle, 50.0, released_at=40.0) for handle in ("ev-1", "ev-2"))
    assert drains["B"].refs == (Ref("local", "n-1", 60.0),) and drains["C"].refs == ()
    version = postgres_server.psql("SELECT version FROM drainctl_schema", database=database).strip()
    assert version == str(SCHEMA_VERSION)
