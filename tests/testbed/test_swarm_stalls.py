"""The swarm's own stalls: its event-loop lag is measured, and full garbage collections wait for a quiet moment.

Both exist because the swarm is a measuring instrument: a stalled loop adds its stall to every offline time.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from testbed import collecting
from testbed.collecting import Collector
from testbed.swarm.lagging import LoopLag
from tests.support.waiting import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gc_restored() -> Iterator[None]:
    """Leave the interpreter's collector as the test found it."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


async def test_a_blocked_loop_shows_in_the_lag_and_restart_forgets_the_start() -> None:
    lag = LoopLag()
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.12)
    _block_the_loop(0.3)
    await asyncio.sleep(0.12)
    blocked = lag.summary()
    lag.restart()
    await asyncio.sleep(0.2)
    task.cancel()
    assert blocked["max"] is not None and blocked["max"] >= 0.25
    after = lag.summary()
    assert after["samples"] and after["max"] is not None and after["max"] < 0.25


@pytest.mark.usefixtures("gc_restored")
async def test_full_collections_run_only_when_every_client_is_connected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collecting, "CHECK_S", 0.01)
    connected = False
    collector = Collector(lambda: connected)
    collector.start()
    assert gc.get_threshold()[2] > 1_000_000, "CPython no longer starts full collections by itself"
    collector.freeze()
    assert gc.get_freeze_count() > 0, "the sessions that joined are out of every later collection's walk"
    task = asyncio.create_task(collector.run())
    for _ in range(20):  # young collections: generation 2's count grows towards a due full collection
        gc.collect(1)
    await asyncio.sleep(0.1)
    assert collector.full_collections == 0, "no full collection while a client is offline"
    connected = True
    await until(lambda: collector.full_collections >= 1, what="a full collection once every client is connected")
    task.cancel()


def _block_the_loop(seconds: float) -> None:
    """What a full collection or a starved process does to the loop: nothing else runs meanwhile."""
    time.sleep(seconds)
