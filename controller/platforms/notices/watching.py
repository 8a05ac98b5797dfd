"""The local source: platform notices that the testbed supervisor posts to each host's node agent.

It polls every inventory host's agent (`GET /v1/notices`) and emits one event per notice that is not yet
released. The notice id is the event's `ref`, which the local release hands back to the agent.
An agent that cannot be reached is logged (once per change of error) and polled again next round.
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

    def __init__(self, agents: Mapping[str, NoticeReader], *, poll_interval_s: float) -> None:
        self._agents = agents
        self._poll_interval_s = poll_interval_s
        self._errors: dict[str, str] = {}
        self._emitted: set[str] = set()

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        while True:
            for event in await self.poll():
                yield event
            await asyncio.sleep(self._poll_interval_s)

    async def poll(self) -> list[LifecycleEvent]:
        """One round over every agent: the events not emitted before."""
        names = list(self._agents)
        rounds = await asyncio.gather(*(self._read(name) for name in names))
        fresh = [event for events in rounds for event in events if event.id not in self._emitted]
        self._emitted.update(event.id for event in fresh)
        return fresh

    async def _read(self, instance: str) -> list[LifecycleEvent]:
        try:
            notices = await self._agents[instance].notices()
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
