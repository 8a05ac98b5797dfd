"""The local source's backstop: every agent's notices, read in slow rounds with a bound on requests in flight.

Agents push each new notice to the API the moment they see it (`controller/api/pushes.py`); this poll
(`GET /v1/notices` on every agent the controller knows, static and learned) catches a push that was lost. It
emits one event per notice that is not yet released; the notice id is the event's `ref`, which the local
release hands back to the agent. A round starts `poll_interval_s` after the previous one started and keeps at
most `max_in_flight` requests on the wire (a few workers over the list, not one task per agent), so 10,000
agents cost a steady trickle, not a burst that queues the engine's drains. An agent that cannot be reached is
logged (once per change of error) and polled again next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from controller.core.errors import DrainctlError
from controller.core.models import LifecycleEvent
from controller.core.notices import SOURCE, notice_event
from controller.protocol.agent import Notice

log = logging.getLogger("drainctl.platforms.notices.watching")


class NoticeReader(Protocol):
    """An agent's notices (`AgentClient.notices`), as the wire protocol has them."""

    async def notices(self) -> Sequence[Notice]: ...


class LocalSource:
    name = SOURCE

    def __init__(
        self, agents: Mapping[str, NoticeReader], *, poll_interval_s: float, max_in_flight: int = 16
    ) -> None:
        self._agents = agents
        self._poll_interval_s = poll_interval_s
        self._max_in_flight = max_in_flight
        self._errors: dict[str, str] = {}
        self._emitted: set[str] = set()
        self.last_round_s: float | None = None
        """How long the last round took (logged when it overran its interval)."""

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            for event in await self.poll():
                yield event
            took_s = loop.time() - started
            if took_s > self._poll_interval_s:
                log.warning("local source: a round over %d agents took %.1f s, longer than its interval (%g s)",
                            len(self._agents), took_s, self._poll_interval_s)
            await asyncio.sleep(max(0.0, self._poll_interval_s - took_s))

    async def poll(self) -> list[LifecycleEvent]:
        """One round over every agent: the events not emitted before."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        names = iter(list(self._agents))
        found: list[LifecycleEvent] = []

        async def worker() -> None:
            for name in names:
                found.extend(await self._read(name))

        await asyncio.gather(*(worker() for _ in range(self._max_in_flight)))
        self.last_round_s = loop.time() - started
        fresh = [event for event in found if event.id not in self._emitted]
        self._emitted.update(event.id for event in fresh)
        return fresh

    async def _read(self, instance: str) -> list[LifecycleEvent]:
        agent = self._agents.get(instance)
        if agent is None:  # gone since the round started
            return []
        try:
            notices = await agent.notices()
        except DrainctlError as exc:
            if self._errors.get(instance) != str(exc):
                log.warning("local source: cannot read %s's notices: %s", instance, exc)
            self._errors[instance] = str(exc)
            return []
        if self._errors.pop(instance, None) is not None:
            log.info("local source: reading %s's notices again", instance)
        return [to_event(instance, notice) for notice in notices if notice.state != "released"]


def to_event(instance: str, notice: Notice) -> LifecycleEvent:
    return notice_event(instance, notice_id=notice.id, kind=notice.kind, not_after=notice.not_after)
