"""The local source's backstop: every agent's notices, read in slow, paced rounds with a bound in flight.

Agents push each new notice to the API the moment they see it (`controller/api/pushes.py`); this poll
(`GET /v1/notices` on every agent the controller knows, static, discovered and learned) catches a push that was
lost. It emits one event per notice that is not yet released; the notice id is the event's `ref`, which the
local release hands back to the agent. Within a round, reads start at most `rate_per_s` a second, evenly spaced
(`pacing.Pace`), with at most `max_in_flight` on the wire (a few workers over the list, not one task per agent),
so 10,000 agents cost a steady trickle, not a burst that queues the engine's drains. A round therefore lasts at
least agents / rate_per_s; the next starts `poll_interval_s` after the previous one started, or at once when the
round took longer (said once in the log: the interval is then agents / rate). Between rounds, an agent that
appeared since (discovered, learned) and was never read is read within `NEW_AGENTS_CHECK_S`: the first round
of a controller that just started runs before discovery has answered. An agent that cannot be reached is logged
(once per change of error) and polled again next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from controller.core.errors import DrainctlError
from controller.core.models import LifecycleEvent
from controller.core.notices import SOURCE, notice_event
from controller.platforms.notices.pacing import Pace
from controller.protocol.agent import Notice

log = logging.getLogger("drainctl.platforms.notices.watching")

NEW_AGENTS_CHECK_S = 1.0
"""How often, between rounds, the agents are looked over for ones never read yet."""


class NoticeReader(Protocol):
    """An agent's notices (`AgentClient.notices`), as the wire protocol has them."""

    async def notices(self) -> Sequence[Notice]: ...


class LocalSource:
    name = SOURCE

    def __init__(
        self, agents: Mapping[str, NoticeReader], *, poll_interval_s: float, max_in_flight: int = 16,
        rate_per_s: float | None = None,
    ) -> None:
        """`rate_per_s`: the most reads started per second (None: as fast as `max_in_flight` allows)."""
        self._agents = agents
        self._poll_interval_s = poll_interval_s
        self._max_in_flight = max_in_flight
        self._rate_per_s = rate_per_s
        self._overran = False
        self._errors: dict[str, str] = {}
        self._emitted: set[str] = set()
        self._read_once: set[str] = set()
        """Every agent read at least once (answered or not)."""
        self.last_round_s: float | None = None
        """How long the last round took (logged when it overran its interval)."""

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            for event in await self.poll():
                yield event
            took_s = loop.time() - started
            if took_s > self._poll_interval_s and not self._overran:
                log.warning("local source: a round over %d agents took %.1f s at %s reads/s, longer than its "
                            "interval (%g s): rounds follow each other at once", len(self._agents), took_s,
                            self._rate_per_s or "unpaced", self._poll_interval_s)
            self._overran = took_s > self._poll_interval_s
            while (left_s := started + self._poll_interval_s - loop.time()) > 0:
                await asyncio.sleep(min(NEW_AGENTS_CHECK_S, left_s))
                for event in await self.poll(only_unread=True):
                    yield event

    async def poll(self, *, only_unread: bool = False) -> list[LifecycleEvent]:
        """One round over every agent (`only_unread`: those never read yet): the events not emitted before."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        names = iter([name for name in self._agents if not only_unread or name not in self._read_once])
        found: list[LifecycleEvent] = []
        pace = Pace(self._rate_per_s)

        async def worker() -> None:
            for name in names:
                await pace.wait()
                found.extend(await self._read(name))

        await asyncio.gather(*(worker() for _ in range(self._max_in_flight)))
        if not only_unread:
            self.last_round_s = loop.time() - started
        fresh = [event for event in found if event.id not in self._emitted]
        self._emitted.update(event.id for event in fresh)
        return fresh

    async def _read(self, instance: str) -> list[LifecycleEvent]:
        agent = self._agents.get(instance)
        if agent is None:  # gone since the round started
            return []
        self._read_once.add(instance)
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
