"""A controller that dies mid-drain is resumed from the journal and finishes the drain exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controller.core.models import Drain, Phase
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, Release, make_world
from tests.support.tasks import async_test


@async_test
async def test_a_controller_killed_during_the_drain_request_never_sends_it_again(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=2000)
    host.drain_blocks = asyncio.Event()  # the request reaches the app, the controller dies before the answer
    first = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = first.notice("A", in_s=60)
    first.engine.submit(event)
    passes = asyncio.create_task(first.engine.run_due())
    for _ in range(1000):
        if host.drains:
            break
        await asyncio.sleep(0)
    assert len(host.drains) == 1
    passes.cancel()  # the process is gone; what it journaled is all that is left
    first.store.close()

    clock.set(clock.now() + 1.0)
    host.drain_blocks = None
    second = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock, releaser=None)
    resumed = second.engine.get("A")
    assert resumed is not None and resumed.phase is Phase.DRAINING
    await second.settle()

    drain = second.engine.get("A")
    assert drain is not None
    assert len(host.drains) == 1, "the restarted controller sent a second drain request"
    assert drain.phase is Phase.RELEASED and drain.sockets_reset == 0
    assert "verifying:resumed" in second.steps("A")
    assert len(second.releaser.releases) == 1 and second.releaser.releases[0].at < event.not_after


class Killed(BaseException):
    """The controller process dies: nothing after this point runs, only the journal remains."""


class DyingStore(SqliteJournal):
    """A journal whose process is killed right after its `writes_left`-th write is durable."""

    def __init__(self, path: Path, writes_left: int) -> None:
        super().__init__(path)
        self.writes_left = writes_left

    def record(self, before: Drain, after: Drain, **kwargs: Any) -> Drain:
        written = super().record(before, after, **kwargs)
        self._count_down()
        return written

    def _count_down(self) -> None:
        self.writes_left -= 1
        if self.writes_left == 0:
            raise Killed


def _run_with_kill(journal: Path, behaviour: str, kill_after: int | None) -> tuple[FakeHost, list[Release], float]:
    """Drain A; kill the controller after `kill_after` journal writes; restart it; return what the world saw."""

    async def scenario() -> tuple[FakeHost, list[Release], float]:
        clock = FakeClock()
        host = FakeHost(clock, sockets=300, behaviour=behaviour)
        world = make_world(journal, hosts={"A": host}, clock=clock)
        if kill_after is not None:
            world.store.close()
            world = make_world(journal, hosts={"A": host}, clock=clock, store=DyingStore(journal, kill_after))
        event = world.notice("A", in_s=60)
        releases: list[Release] = []
        try:
            world.engine.submit(event)
            await world.settle()
        except Killed:
            releases.extend(world.releaser.releases)
            world.store.close()
            clock.set(clock.now() + 0.25)
            world = make_world(journal, hosts={"A": host}, clock=clock)
            await world.settle()
        releases.extend(world.releaser.releases)
        world.store.close()
        return host, releases, event.not_after

    return asyncio.run(scenario())


@pytest.mark.parametrize("behaviour", ["graceful", "ignore"])
def test_a_kill_after_any_journal_write_still_drains_at_most_once_and_releases_once(
    tmp_path: Path, behaviour: str
) -> None:
    _, _, _ = _run_with_kill(tmp_path / "count.db", behaviour, None)
    with SqliteJournal(tmp_path / "count.db") as store:
        writes = len(store.transitions()) - 1  # the first line is written by create(), not record()
    assert writes >= 5
    for kill_after in range(1, writes + 1):
        host, releases, not_after = _run_with_kill(tmp_path / f"kill-{kill_after}.db", behaviour, kill_after)
        assert len(host.drains) <= 1, f"killed after write {kill_after}: drain request sent twice"
        assert len(releases) >= 1 and all(r.at < not_after for r in releases), f"killed after write {kill_after}"
        assert host.remaining() == 0, f"killed after write {kill_after}: sockets left behind"
