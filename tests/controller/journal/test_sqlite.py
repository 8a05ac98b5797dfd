"""The journal on a real SQLite file: what was written survives a SIGKILL, a restart resumes from it, and its
transition sequence serves as an outbox."""

from __future__ import annotations

import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.errors import ConfigError, InvalidTransition
from controller.core.models import Drain, EventKind, LifecycleEvent, Phase
from controller.core.ports import Journal
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.controller.journal.conftest import OpenStore
from tests.support.paths import REPO_ROOT
from tests.support.tasks import async_test

ROOT = REPO_ROOT


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Children started by a test; each is killed and reaped at teardown, even on failure."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()


def _spawn(children: list[subprocess.Popen[str]], journal: Path, mode: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.controller.journal.journal_writer", str(journal), mode],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    children.append(child)
    return child


def _line(child: subprocess.Popen[str]) -> dict[str, object]:
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"journal writer exited early with {child.poll()}"
    result: dict[str, object] = json.loads(line)
    return result


@async_test
async def test_a_drain_requested_before_a_sigkill_is_resumed_without_a_second_request(
    tmp_path: Path, writer: list[subprocess.Popen[str]]
) -> None:
    journal = tmp_path / "journal.db"
    child = _spawn(writer, journal, "requested")
    assert _line(child) == {"event": "drain requested", "drain_id": 1}
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL

    clock = FakeClock(1_700_000_001.0)
    host = FakeHost(clock, sockets=120, behaviour="ignore")
    world = make_world(journal, hosts={"A": host}, clock=clock)
    resumed = world.engine.get("A")
    assert resumed is not None and resumed.phase is Phase.DRAINING and resumed.drain_requested_at is not None
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert host.drains == [], "the drain request journaled by the killed controller was sent again"
    assert drain.phase is Phase.RELEASED and drain.sockets_reset == 120
    assert [r.refs for r in world.releaser.releases] == [("notice-A",)]


def test_every_acknowledged_write_survives_a_sigkill_mid_stream(
    tmp_path: Path, writer: list[subprocess.Popen[str]]
) -> None:
    journal = tmp_path / "journal.db"
    child = _spawn(writer, journal, "stream")
    acknowledged = [_line(child) for _ in range(150)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with SqliteJournal(journal) as store:
        for line in acknowledged:
            drain_id = line["drain_id"]
            assert isinstance(drain_id, int)
            steps = [t.phase.value for t in store.transitions(drain_id=drain_id)]
            if line["event"] == "recorded":
                assert line["phase"] in steps, f"acknowledged write lost: {line}"
        for drain in store.drains(limit=10_000):
            last = store.transitions(drain_id=drain.id)[-1]
            assert last.phase is drain.phase, "an episode and its journal lines disagree"


def test_the_journal_refuses_a_transition_the_state_machine_does_not_allow(open_store: OpenStore) -> None:
    store = open_store()
    drain = _created(store)
    with pytest.raises(InvalidTransition, match="pending -> released"):
        store.record(drain, dataclasses.replace(drain, phase=Phase.RELEASED), step="skip everything")
    moved = store.record(drain, dataclasses.replace(drain, phase=Phase.DRAINING), step="drain requested")
    with pytest.raises(InvalidTransition, match="no longer in pending"):
        store.record(drain, dataclasses.replace(drain, phase=Phase.DRAINING), step="from a stale copy")
    assert store.latest("A") == moved


def test_an_unusable_journal_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="journal: cannot open"):
        SqliteJournal(blocker / "journal.db")


def test_the_journal_is_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    with SqliteJournal(tmp_path / "journal.db") as store:
        _created(store)
    with sqlite3.connect(tmp_path / "journal.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store = SqliteJournal(tmp_path / "journal.db")
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        store.close()


def _created(store: Journal) -> Drain:
    event = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=100.0, source="local")
    draft = Drain(id=0, instance="A", pool="web", source="local", kind=event.kind, event_id=event.id,
                  not_after=100.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True)
    return store.create(draft, event=event, at=0.0, step="event accepted")


def test_the_outbox_gives_every_line_after_a_seq_once_in_order_even_while_lines_are_written(
    open_store: OpenStore,
) -> None:
    store = open_store()
    drain = _created(store)
    delivered: list[int] = []
    for phase in (Phase.DRAINING, Phase.VERIFYING, Phase.DRAINED):  # a listener reads pages of 2 meanwhile
        drain = store.record(drain, dataclasses.replace(drain, phase=phase), step=f"to {phase}")
        page = store.transitions(after_seq=delivered[-1] if delivered else 0, limit=2)
        delivered.extend(line.seq for line in page)
    while page := store.transitions(after_seq=delivered[-1], limit=2):
        delivered.extend(line.seq for line in page)
    written = [line.seq for line in store.transitions(drain_id=drain.id)]
    assert delivered == written == sorted(set(written)) and len(written) == 4
    tail = store.transitions(drain_id=drain.id, after_seq=written[1])
    assert [t.step for t in tail] == ["to verifying", "to drained"]
    assert store.transitions(after_seq=written[-1]) == []
    assert [t.seq for t in store.transitions(limit=2)] == written[-2:], "without after_seq: the most recent"
