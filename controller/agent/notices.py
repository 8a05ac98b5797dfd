"""The platform's lifecycle notices the agent has seen, and how one is released back to the platform.

A notice says "this host goes away at `not_after`". It is released once its sockets are drained or reset:
for the local testbed and GCP, marking it released is the whole release (the supervisor polls it; the guest's
shutdown hold returns); Azure plugs its own `PlatformRelease` in (`azure_events.AzureRelease`: StartRequests).
With a `NoticeStore`, the book is written to disk on every change, so a restarted agent keeps its open notices
and never releases one twice.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from controller.core.clocks import SleepingClock as Clock
from controller.protocol import agent as wire

Actor = Literal["controller", "agent"]
"""Who acted: the controller (through the agent's API) or the agent's own fallback."""


class NoticeState(enum.StrEnum):
    OPEN = "open"
    """Seen; nobody has started draining yet."""
    DRAINING = "draining"
    """A drain started (see `drain_started_by`)."""
    RELEASED = "released"
    """Handed back to the platform; the host may go."""


@dataclass
class Notice:
    """One lifecycle notice and what has been done about it (mutable: the agent's own record)."""

    id: str
    kind: str
    not_after: float
    """Unix seconds: the platform deletes the host at this time whatever happens."""
    seen_at: float
    state: NoticeState = NoticeState.OPEN
    drain_started_by: Actor | None = None
    reset: int | None = None
    """Sockets the agent's fallback reset for this notice; None when it reset none."""
    released_at: float | None = None
    released_by: Actor | None = None
    source: str = "api"
    """Who reported it: `api` (POST /v1/notices), `azure` (Scheduled Events), `gcp` (guest metadata), `shutdown`
    (the guest's shutdown hold), `prestop` (a hold with its own id: Kubernetes' preStop hook, id = pod uid). The
    platform release acts only on its own platform's notices."""
    grace_s: float | None = None
    """How long the fallback waits for a controller drain; None: the agent's `fallback.grace_s`."""
    drain_started_at: float | None = None
    controller_start_by: float | None = None
    """The controller took the notice (its push answer) and its plan requests the drain by this unix time, even if
    the disruption budget holds it back until then; the fallback waits for it that long. In memory only: a
    restarted agent pushes its open notices again and learns it again."""

    def start_drain(self, by: Actor, *, at: float | None = None) -> None:
        if self.state is NoticeState.OPEN:
            self.state = NoticeState.DRAINING
            self.drain_started_by = by
            self.drain_started_at = at

    def to_wire(self) -> wire.Notice:
        """The notice as the API reports it (controller/protocol/agent.py)."""
        return wire.Notice(
            id=self.id,
            kind=self.kind,
            not_after=self.not_after,
            seen_at=self.seen_at,
            state=self.state.value,
            drain_started_by=self.drain_started_by,
            reset=self.reset,
            released_at=self.released_at,
            released_by=self.released_by,
            source=self.source,
            drain_started_at=self.drain_started_at,
        )

    def as_json(self) -> dict[str, Any]:
        """The wire form as a JSON object (the API's, and the notice file's but for `grace_s`)."""
        return self.to_wire().model_dump(mode="json")


class PlatformRelease(Protocol):
    """Tells the platform it may proceed with the host's deletion. Raises our errors on failure."""

    async def release(self, notice: Notice) -> None: ...


class LocalRelease:
    """The local testbed's release (the supervisor polls the notice until it reads `released`), and GCP's (the
    guest's shutdown hold returns once every notice is released)."""

    async def release(self, notice: Notice) -> None:
        return None


class NoticeStore(Protocol):
    """Where the book is kept between agent runs (`keeping.NoticeFile`)."""

    def load(self) -> list[Notice]: ...

    def save(self, notices: Iterable[Notice]) -> None: ...


class NoticeBook:
    """Notices by id; adding is idempotent, releasing happens once (also across restarts, with a store)."""

    def __init__(self, platform: PlatformRelease, clock: Clock, store: NoticeStore | None = None) -> None:
        self._platform = platform
        self._clock = clock
        self._store = store
        self._notices: dict[str, Notice] = {}
        self._lock = asyncio.Lock()

    def restore(self) -> list[Notice]:
        """Load the stored notices (before serving); the ones not yet released, which need their fallback again."""
        if self._store is None:
            return []
        for notice in self._store.load():
            self._notices.setdefault(notice.id, notice)
        return self.unreleased()

    def save(self) -> None:
        """Write the book to its store (after a change made to a notice outside the book)."""
        if self._store is not None:
            self._store.save(self._notices.values())

    def add(
        self, notice_id: str, kind: str, not_after: float, *, source: str = "api", grace_s: float | None = None,
        controller_drain_at: float | None = None,
    ) -> tuple[Notice, bool]:
        """The notice with this id, and whether it is new. A known notice announced again with an earlier
        `not_after` takes it (the platform shortened it; its fallback reads the deadline each time).
        `controller_drain_at`: a new notice is already being drained by the controller (since then)."""
        known = self._notices.get(notice_id)
        if known is not None:
            if known.state is not NoticeState.RELEASED and not_after < known.not_after:
                known.not_after = not_after  # a shortened deadline: the earliest the platform announced holds
                self.save()
            return known, False
        notice = Notice(id=notice_id, kind=kind, not_after=not_after, seen_at=self._clock.now(), source=source,
                        grace_s=grace_s)
        if controller_drain_at is not None:
            notice.start_drain("controller", at=controller_drain_at)
        self._notices[notice_id] = notice
        self.save()
        return notice, True

    def get(self, notice_id: str) -> Notice | None:
        return self._notices.get(notice_id)

    def all(self) -> list[Notice]:
        return list(self._notices.values())

    def unreleased(self) -> list[Notice]:
        return [n for n in self._notices.values() if n.state is not NoticeState.RELEASED]

    async def release(self, notice: Notice, *, by: Actor) -> bool:
        """Release through the platform, once; False when it was already released."""
        async with self._lock:
            if notice.state is NoticeState.RELEASED:
                return False
            await self._platform.release(notice)
            notice.state = NoticeState.RELEASED
            notice.released_at = self._clock.now()
            notice.released_by = by
            self.save()
            return True
