"""Discovery rounds of one platform, forever, and the hold of events for instances not discovered yet.

`Discovery.run` asks its platform's `Discoverer` for the instances every `interval_s` and hands each answer to
the fleet. A round that fails (429 with Retry-After, 5xx, an expired or refused token, a malformed answer: any
drainctl error) changes nothing, so an outage never empties the inventory; it is logged and tried again after a
backoff (controller/core/retrying.py, at least the Retry-After, at most `retry_max_s`). `refresh()` asks for a
round now and returns when a round that started after the ask has answered.

`Awaiting` wraps a source: an event whose instance is not in the inventory is kept (not dropped, not refused)
while every discovery runs a fresh round, then passed on; if it is still unknown, the engine refuses it with its
usual "unknown instance" line, after a log line saying which rounds did not list it. Other events pass at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from controller.core.errors import DrainctlError, TemporaryError
from controller.core.members import Member
from controller.core.models import LifecycleEvent
from controller.core.ports import Source
from controller.core.retrying import backoff_s
from controller.hosts.fleet import Fleet

log = logging.getLogger(__name__)

HOLD_MAX_S = 300.0
"""The longest an event waits for discovery rounds (a platform failing for longer: the event goes on)."""


class Discoverer(Protocol):
    async def discover(self) -> Sequence[Member]:
        """Every instance the platform has now; drainctl errors only."""
        ...


class Discovery:
    def __init__(
        self, platform: str, discoverer: Discoverer, fleet: Fleet, *, interval_s: float, retry_max_s: float = 60.0
    ) -> None:
        self.platform = platform
        self._discoverer = discoverer
        self._fleet = fleet
        self._interval_s = interval_s
        self._retry_max_s = retry_max_s
        self._asked = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self._failures = 0
        fleet.discoveries.append(self)
        fleet.expect(platform)  # until its first round answers, a resumed drain's instance may still be ours

    async def run(self) -> None:
        """Rounds until cancelled; never ends by itself."""
        while True:
            delay_s = await self.round()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._asked.wait()
            self._asked.clear()

    async def round(self) -> float:
        """One round; how long to wait before the next."""
        waiting, self._waiting = self._waiting, []
        started = time.monotonic()
        try:
            members = await self._discoverer.discover()
        except DrainctlError as exc:
            self._waiting = waiting + self._waiting
            return self._failed(exc)
        if self._failures:
            log.info("discovery %s: answering again after %d failed rounds", self.platform, self._failures)
        self._failures = 0
        self._fleet.apply(self.platform, members, started=started)
        for future in waiting:
            if not future.done():
                future.set_result(None)
        return self._interval_s

    async def refresh(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._asked.set()
        await future

    def _failed(self, exc: DrainctlError) -> float:
        self._failures += 1
        hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
        delay_s = backoff_s(self._failures, initial_s=min(1.0, self._interval_s), max_s=self._retry_max_s,
                            hint_s=hint_s)
        log.warning("discovery %s: round failed (%s); the inventory is kept; next round in %.1f s", self.platform,
                    exc, delay_s)
        return delay_s


class Awaiting:
    """A source whose events for instances not known yet wait for fresh discovery rounds."""

    def __init__(self, inner: Source, fleet: Fleet, *, hold_max_s: float = HOLD_MAX_S) -> None:
        self.name = inner.name
        self._inner = inner
        self._fleet = fleet
        self._hold_max_s = hold_max_s

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        ready: asyncio.Queue[LifecycleEvent | BaseException] = asyncio.Queue()
        holds: set[asyncio.Task[None]] = set()
        pump = asyncio.create_task(self._pump(ready, holds), name=f"awaiting-{self.name}")
        try:
            while True:
                item = await ready.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for task in (pump, *holds):
                task.cancel()

    async def _pump(self, ready: asyncio.Queue[LifecycleEvent | BaseException], holds: set[asyncio.Task[None]]) -> None:
        try:
            async for event in self._inner.watch():
                if event.instance in self._fleet.inventory or not self._fleet.discoveries:
                    ready.put_nowait(event)
                    continue
                task = asyncio.create_task(self._hold(event, ready))
                holds.add(task)
                task.add_done_callback(holds.discard)
        except Exception as exc:  # the engine's watch loop logs it and watches again
            ready.put_nowait(exc)

    async def _hold(self, event: LifecycleEvent, ready: asyncio.Queue[LifecycleEvent | BaseException]) -> None:
        platforms = ", ".join(d.platform for d in self._fleet.discoveries)
        log.info("source %s: %s is not in the inventory yet; holding its event for a discovery round (%s)",
                 self.name, event.instance, platforms)
        rounds = [d.refresh() for d in self._fleet.discoveries]
        try:
            async with asyncio.timeout(self._hold_max_s):
                await asyncio.gather(*rounds)
        except TimeoutError:
            log.warning("source %s: discovery (%s) did not answer within %.0f s; passing on %s's event",
                        self.name, platforms, self._hold_max_s, event.instance)
        if event.instance not in self._fleet.inventory:
            log.error("source %s: %s is still unknown after a fresh discovery round of %s; its event is refused",
                      self.name, event.instance, platforms)
        ready.put_nowait(event)
