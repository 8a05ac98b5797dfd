"""`drainctl cancel` in the engine: before any reset the drain ends and nothing more is done to the host; a
platform's notice is not released early but at the release deadline; after a reset began it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.models import Outcome, Phase
from controller.engine import CancelRefused
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.support.tasks import async_test


@async_test
async def test_a_cancelled_manual_drain_is_finished_and_never_reset(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300, app_rate_per_s=1.0)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.drain("A", deadline_s=30, rate_per_s=1)
    await world.advance(2.0)
    drain = await world.engine.cancel("A", request_id="req-1")
    assert (drain.phase, drain.outcome, drain.finished) == (Phase.CANCELLED, Outcome.CANCELLED, True)
    await world.advance(120.0)
    assert host.resets == [] and world.releaser.releases == []
    assert world.steps("A")[-1] == "cancelled:cancelled by operator"
    again = await world.engine.cancel("A", request_id="req-1")
    assert again.id == drain.id and world.steps("A")[-1] == "cancelled:cancelled by operator"
    with pytest.raises(CancelRefused, match="has no running drain to cancel"):
        await world.engine.cancel("A")


@async_test
async def test_a_cancelled_platform_drain_is_released_at_its_deadline_not_before(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300, app_rate_per_s=1.0)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=60.0))
    await world.advance(1.0)
    drain = await world.engine.cancel("A")
    assert drain.phase is Phase.CANCELLED and not drain.finished and drain.release_by is not None
    await world.advance(drain.release_by - clock.now() - 1.0)
    assert world.releaser.releases == [] and host.resets == []
    await world.settle()
    [release] = world.releaser.releases
    assert release.at >= drain.release_by and host.resets == []
    finished = world.engine.get("A")
    assert finished is not None and finished.finished and finished.phase is Phase.CANCELLED


@async_test
async def test_cancel_is_refused_once_the_reset_began(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300, behaviour="unreachable")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.drain("A", deadline_s=1)
    await world.advance(1.5)
    assert world.engine.get("A") is not None and world.engine.get("A").phase is Phase.FORCING  # type: ignore[union-attr]
    status = next(s for s in world.engine.status() if s.instance == "A")
    assert status.error is not None and "unreachable" in status.error and status.retries >= 1
    with pytest.raises(CancelRefused, match="is forcing: too late to cancel"):
        await world.engine.cancel("A")
