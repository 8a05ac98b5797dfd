"""The engine's daemon loop in real time: sources feed it, passes run when due, a failing source is retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.app import assemble
from controller.config import parse_config
from controller.core.budget import Budget
from controller.core.models import LifecycleEvent, Outcome, Phase
from controller.core.settings import EngineConfig
from controller.engine import ManualDisabled
from controller.platforms.notices.watching import LocalSource
from tests.controller.engine.fakes import FakeHost, World, make_world
from tests.support.tasks import async_test
from tests.support.waiting import until

QUICK = Budget(drain_deadline_s=10.0, no_progress_window_s=0.5, verify_s=2.0, margin_s=2.0, platform_notice_s=30.0,
               expected_sockets_per_server=100, drain_rate_per_s=100.0)
QUICK_SETTINGS = EngineConfig(poll_interval_s=0.05, retry_initial_s=0.05, retry_max_s=0.2)


class WallClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class Scripted:
    """A source that fails `failures` times, then emits its events and watches on quietly."""

    name = "scripted"

    def __init__(self, events: list[LifecycleEvent], *, failures: int = 0) -> None:
        self.events = events
        self.failures = failures

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("watch connection dropped")
        for event in self.events:
            yield event
        await asyncio.Event().wait()


async def _until_finished(world: World, instance: str, *, within_s: float = 60.0) -> None:
    def finished() -> bool:
        drain = world.engine.get(instance)
        return drain is not None and drain.finished

    await until(finished, within_s=within_s, what=f"{instance}'s drain to finish")


async def _running(world: World, source: Scripted) -> Any:
    return asyncio.create_task(world.engine.run([source]))


@async_test
async def test_the_daemon_loop_takes_an_event_from_a_source_and_sees_it_through(tmp_path: Path) -> None:
    clock = WallClock()
    host = FakeHost(clock, sockets=50, behaviour="ignore")  # type: ignore[arg-type]
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock, budget=QUICK,  # type: ignore[arg-type]
                       settings=QUICK_SETTINGS)
    event = world.notice("A", in_s=30)
    task = await _running(world, Scripted([event, event]))
    try:
        await _until_finished(world, "A")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    drain = world.engine.get("A")
    assert drain is not None and drain.outcome is Outcome.FORCED and drain.phase is Phase.RELEASED
    assert len(host.drains) == 1 and [count for _, count in host.resets] == [50]
    assert drain.drain_requested_at is not None
    assert host.resets[0][0] - drain.drain_requested_at >= QUICK.no_progress_window_s
    assert world.releaser.releases[0].at < event.not_after


@async_test
async def test_a_source_that_fails_is_watched_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = WallClock()
    host = FakeHost(clock, sockets=10)  # type: ignore[arg-type]
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock, budget=QUICK,  # type: ignore[arg-type]
                       settings=QUICK_SETTINGS)
    task = await _running(world, Scripted([world.notice("A", in_s=30)], failures=1))
    try:
        await _until_finished(world, "A")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert any("source scripted failed" in r.getMessage() for r in caplog.records)
    assert len(host.drains) == 1


@async_test
async def test_assembly_builds_the_engine_and_sources_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("token")
    config = parse_config({
        "journal": str(tmp_path / "journal.db"),
        "instances": {"A": {"pool": "web", "agent_url": "http://127.0.0.1:9", "agent_token_file": str(tmp_path / "t")}},
        "sources": {"local": {"enabled": True}, "manual": {"enabled": False}},
    })
    async with assemble(config) as controller:
        assert [type(s) for s in controller.sources] == [LocalSource]
        assert controller.engine.inventory == {"A": "web"}
        with pytest.raises(ManualDisabled):
            controller.engine.drain("A")
        assert controller.metrics.registry.get_sample_value("drainctl_instances", {"phase": "pending"}) == 0
    assert (tmp_path / "journal.db").exists()
