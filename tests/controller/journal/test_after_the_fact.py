"""Intents are on disk before they are acted on (synchronous=FULL); results, and the idempotent release's
request, are journaled after the fact (synchronous=NORMAL, flushed by the next FULL commit), and both are in the
file for another process at once."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from controller.core.models import Drain, Phase
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.support.tasks import async_test

FULL, NORMAL = 2, 1


class Observed(SqliteJournal):
    """Notes the `synchronous` setting each step was committed with."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.modes: dict[str, int] = {}

    def record(self, before: Drain, after: Drain, **kwargs: Any) -> Drain:
        self.modes[kwargs["step"]] = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return super().record(before, after, **kwargs)

    def create(self, draft: Drain, **kwargs: Any) -> Drain:
        self.modes[kwargs["step"]] = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return super().create(draft, **kwargs)


@async_test
async def test_intents_wait_for_the_disk_and_results_do_not(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Observed(tmp_path / "journal.sqlite")
    world = make_world(tmp_path / "journal.sqlite", hosts={"A": FakeHost(clock, sockets=0)}, clock=clock, store=store)
    world.engine.submit(world.notice("A", in_s=120.0))
    await world.settle()
    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    intents = {step: store.modes[step] for step in ("event accepted", "drain requested")}
    results = {step: store.modes[step]
               for step in ("drain accepted", "verified zero", "release requested", "released")}
    assert intents == dict.fromkeys(intents, FULL) and results == dict.fromkeys(results, NORMAL)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == FULL, "the setting is put back"
    with sqlite3.connect(f"file:{tmp_path / 'journal.sqlite'}?mode=ro", uri=True) as other:
        [(phase,)] = other.execute("SELECT phase FROM drains").fetchall()
    assert phase == "released", "a result is in the file for another process (a restarted controller) at once"
