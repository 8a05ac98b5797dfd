"""The engine tells its listeners every journaled step and every event, in journal order, and none of them can
hold up or break a drain: one that raises is logged once, one whose delivery hangs forever falls behind alone."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path

import pytest

from controller.core.announcements import Announcement, Journaled, Resumed, Taken
from controller.core.models import Disposition, Phase
from controller.core.ports import AsyncListener, Listener
from controller.engine import announcing
from tests.controller.engine.fakes import FakeClock, FakeHost, World, make_world, metric
from tests.support.tasks import async_test

WAIT_S = 30.0
"""Generous bound for an async listener to be delivered what was announced."""


class Recorder:
    """Hears synchronously and keeps everything."""

    def __init__(self) -> None:
        self.heard: list[Announcement] = []

    def hear(self, announcement: Announcement) -> None:
        self.heard.append(announcement)

    def lines(self, drain_id: int) -> list[Journaled]:
        return [a for a in self.heard if isinstance(a, Journaled) and a.line.drain_id == drain_id]


class AsyncRecorder:
    """Hears through its own delivery task and keeps everything."""

    def __init__(self) -> None:
        self.heard: list[Announcement] = []
        self.changed = asyncio.Event()

    async def hear(self, announcement: Announcement) -> None:
        await asyncio.sleep(0)  # a real one does I/O here
        self.heard.append(announcement)
        self.changed.set()

    async def until_heard(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while len(self.heard) < count:
                self.changed.clear()
                await self.changed.wait()


class Raising:
    def hear(self, announcement: Announcement) -> None:
        raise RuntimeError("listener bug")


class RaisingAsync:
    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    async def hear(self, announcement: Announcement) -> None:
        self.calls += 1
        self.called.set()
        raise ConnectionError("webhook endpoint down")

    async def until_called(self, times: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while self.calls < times:
                self.called.clear()
                await self.called.wait()


class Hanging:
    """A delivery that never returns (a webhook endpoint that accepts the connection and never answers)."""

    def __init__(self) -> None:
        self.started = 0
        self.entered = asyncio.Event()

    async def hear(self, announcement: Announcement) -> None:
        self.started += 1
        self.entered.set()
        await asyncio.Event().wait()


def _world(tmp_path: Path, behaviour: str, listeners: list[Listener | AsyncListener]) -> World:
    clock = FakeClock()
    return make_world(tmp_path / f"{len(listeners)}.db", hosts={"A": FakeHost(clock, sockets=300, behaviour=behaviour)},
                      clock=clock, listeners=listeners)


async def _drain(world: World) -> int:
    world.engine.submit(world.notice("A", in_s=60))
    await world.settle()
    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    return drain.id


def _timeline(world: World, drain_id: int) -> list[tuple[float, str, str]]:
    return [(line.at, line.phase, line.step) for line in world.engine.journal(drain_id)]


@pytest.mark.parametrize("behaviour", ["graceful", "ignore"])
@async_test
async def test_a_listener_hears_every_journal_line_in_journal_order(tmp_path: Path, behaviour: str) -> None:
    recorder = Recorder()
    world = _world(tmp_path, behaviour, [recorder])

    drain_id = await _drain(world)

    heard = recorder.lines(drain_id)
    assert [a.line for a in heard] == world.engine.journal(drain_id), "every line, with its seq, in order"
    assert heard[0].before is None
    assert all(a.after == b.before for a, b in itertools.pairwise(heard)), "each step starts where the last ended"
    assert heard[-1].after == world.engine.get("A")
    assert all(a.line.phase is a.after.phase for a in heard)


@async_test
async def test_a_listener_hears_the_engines_start_and_every_event_with_what_was_done_with_it(tmp_path: Path) -> None:
    recorder = Recorder()
    world = _world(tmp_path, "graceful", [recorder])
    event = world.notice("A", in_s=60)

    world.engine.submit(event)
    world.engine.submit(event)

    assert recorder.heard[0] == Resumed(drains=())
    taken = [a for a in recorder.heard if isinstance(a, Taken)]
    assert [(t.event, t.disposition) for t in taken] == [(event, Disposition.STARTED), (event, Disposition.DUPLICATE)]
    created = next(i for i, a in enumerate(recorder.heard) if isinstance(a, Journaled))
    assert recorder.heard.index(taken[0]) == created + 1, "the event is announced after the line it caused"


METRICS = [
    ("drainctl_drains_total", {"outcome": "graceful"}),
    ("drainctl_drains_total", {"outcome": "forced"}),
    ("drainctl_sockets_reset_total", {}),
    ("drainctl_instances", {"phase": "released"}),
    ("drainctl_events_total", {"source": "local", "disposition": "started"}),
]


@pytest.mark.parametrize("behaviour", ["graceful", "ignore"])
@async_test
async def test_listeners_that_raise_or_hang_neither_delay_nor_break_a_drain(
    tmp_path: Path, behaviour: str, caplog: pytest.LogCaptureFixture
) -> None:
    quiet = _world(tmp_path, behaviour, [])
    quiet_id = await _drain(quiet)
    recorder, hanging, raising_async = Recorder(), Hanging(), RaisingAsync()
    noisy = _world(tmp_path, behaviour, [Raising(), hanging, raising_async, recorder])

    async with asyncio.timeout(WAIT_S):  # a listener awaited inline would hang the drain: fail instead
        noisy_id = await _drain(noisy)

    assert _timeline(noisy, noisy_id) == _timeline(quiet, quiet_id), "same steps at the same fake-clock times"
    assert [a.line for a in recorder.lines(noisy_id)] == noisy.engine.journal(noisy_id)
    assert [metric(noisy, *m) for m in METRICS] == [metric(quiet, *m) for m in METRICS]
    async with asyncio.timeout(WAIT_S):
        await hanging.entered.wait()
    await raising_async.until_called(len(recorder.heard))
    assert hanging.started == 1, "the hanging listener got its first announcement and never returned"
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for name in ("Raising", "RaisingAsync"):
        assert len([m for m in logged if m.startswith(f"listener {name} failed")]) == 1, (
            f"{name} failed on every announcement and is logged once, not once per transition"
        )


@async_test
async def test_an_async_listener_hears_everything_in_order_from_its_own_task(tmp_path: Path) -> None:
    recorder, delivered = Recorder(), AsyncRecorder()
    world = _world(tmp_path, "ignore", [recorder, delivered])

    await _drain(world)
    await delivered.until_heard(len(recorder.heard))

    assert delivered.heard == recorder.heard


@async_test
async def test_a_listener_that_falls_too_far_behind_loses_announcements_not_drains(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(announcing, "MAILBOX_SIZE", 3)
    recorder = Recorder()
    world = _world(tmp_path, "ignore", [Hanging(), recorder])

    drain_id = await _drain(world)

    assert [a.line for a in recorder.lines(drain_id)] == world.engine.journal(drain_id)
    behind = [r for r in caplog.records if "announcements behind" in r.getMessage()]
    assert len(behind) == 1 and "Hanging" in behind[0].getMessage()
