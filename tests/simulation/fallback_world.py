"""The world the agent's fallback acts on (issue 9, Build item 3): a host, its app, the platform, the state file.

The truth (`AgentHost`, `PlatformNotice`, `BoundaryFaults`) outlives an agent; each agent incarnation sees it
through views (`HookView`, `SocketsView`, `ReleaseView`, `FaultyStore`) that raise `Crash` once that agent is
dead, so nothing a killed agent still had in flight reaches the world. Every call through a view is one
boundary crossing, numbered over all incarnations: a crash can be injected before or after any of them (a
state-file write, a platform release, a reset ...). Errors are the ones the real boundaries raise: the app
hook's `AppTimeout`/`AppUnreachable`/`AppRejected`, `ss`'s `TemporaryError`/`PermanentError`, IMDS's
`ImdsUnavailable`.

`WaitingClock` is `clocks.SimClock` that can also sleep: a sleep parks its task until the simulation moves the
true time past its end, so the real fallback runs on simulated time. Who calls (the agent's own fallback or the
fake controller through the agent's API) is in `ACTOR`, set in the controller's tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from controller.agent.apphook import AppRejected, AppTimeout, AppUnreachable
from controller.agent.keeping import NoticeFile
from controller.agent.notices import Notice, NoticeState
from controller.agent.watchers.azure import ImdsUnavailable
from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from tests.simulation.clocks import SimClock
from tests.simulation.fakes import Crash, Life, SimHost

ACTOR: ContextVar[str] = ContextVar("actor", default="agent")
"""`controller` inside the fake controller's calls; `agent` everywhere else (the fallback)."""

APP_TIMEOUT_S = 2.0
"""How long a stopped app (or a timing-out hook) keeps the drain call waiting: the agent's `app.timeout_s`."""
SS_TIMEOUT_S = 30.0
"""How long a hung `ss` keeps a count or a reset waiting before it is killed (`sockets._SS_TIMEOUT_S`)."""


class WaitingClock(SimClock):
    """The agent's clock: wall time with steps, monotonic time, and sleeps that end when the true time passes."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = 0

    async def sleep(self, seconds: float) -> None:
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise AssertionError(f"the fallback asked to sleep {seconds!r} s")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order += 1
        heapq.heappush(self._sleepers, (self.true + seconds, self._order, future))
        await future

    def next_wake(self) -> float | None:
        """The true time the next sleep ends (None: nobody sleeps)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def wake_due(self) -> None:
        """End every sleep due by now."""
        while self._sleepers and self._sleepers[0][0] <= self.true:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


def fault(op: str, kind: str) -> DrainctlError:
    """The error the real boundary raises for a fault of `kind` at `op` (drain, count, reset, release)."""
    if op == "drain":
        return AppUnreachable("the app's drain hook is unreachable: connection refused") if kind == "unreachable" \
            else AppRejected("the app refused the drain: HTTP 500")
    if op == "release":
        return ImdsUnavailable("IMDS answered 503 to StartRequests")
    if kind == "permanent":
        return PermanentError(f"ss {'-K ' if op == 'reset' else ''}failed (exit 1): Netlink error")
    return TemporaryError("ss did not answer within 30 s")


@dataclass
class AgentHost(SimHost):
    """The server beside the agent: its sockets as the kernel sees them, its app's drain behaviour (graceful,
    ignore, stopped: the hook times out) and the outages of its boundaries (`fail_if_out`)."""

    drains: list[tuple[float, str]] = field(default_factory=list)
    """(true time, actor) of every drain request that reached the app."""

    def fail_if_out(self, op: str) -> None:
        for outage in self.outages:
            if outage.op == op and outage.start <= self.clock.true < outage.end:
                raise fault(op, outage.kind)

    async def hang_if_out(self, op: str, clock: WaitingClock) -> None:
        """A hung `ss` (count, reset): the call answers only when `ss` is killed at its timeout."""
        if any(o.op == op and o.kind == "hang" and o.start <= self.clock.true < o.end for o in self.outages):
            await clock.sleep(SS_TIMEOUT_S)
            raise TemporaryError(f"ss did not answer within {SS_TIMEOUT_S:g} s")

    async def app_drain(self, rate_per_s: float, clock: WaitingClock) -> dict[str, Any]:
        self.drains.append((self.clock.true, ACTOR.get()))
        timing_out = any(o.op == "drain" and o.kind == "timeout" and o.start <= self.clock.true < o.end
                         for o in self.outages)
        if self.behaviour == "stopped" or timing_out:
            await clock.sleep(APP_TIMEOUT_S)
            raise AppTimeout(f"the app's drain hook did not answer within {APP_TIMEOUT_S:g} s")
        self.fail_if_out("drain")
        if self.behaviour != "ignore" and self._drain_at is None:
            self._base, self._drain_at = self.remaining(), self.clock.true
            self._rate = self.app_rate_per_s or rate_per_s
        return {"accepted": True, "open_sockets": self.remaining(), "rate_per_s": rate_per_s}


@dataclass
class PlatformNotice:
    """A notice the platform holds: its deadline (the earliest it announced) and every release it received."""

    id: str
    not_after: float
    """True time."""
    releases: list[tuple[float, str, int]] = field(default_factory=list)
    """(true time, actor, agent incarnation) of each release the platform accepted."""
    recorded: bool = False
    """The agent's state file holds this notice as released (a later release is then a second one)."""
    withdrawn_at: float | None = None
    """The platform withdrew the notice (the host stays): no deadline, a release is refused (and ignored)."""

    @property
    def held(self) -> bool:
        return self.withdrawn_at is None


@dataclass
class BoundaryFaults:
    """Crashes by boundary crossing number (1, 2, ... over every incarnation): crash_before, crash_after."""

    at: dict[int, str] = field(default_factory=dict)
    crossings: int = 0
    fired: list[tuple[int, str, str]] = field(default_factory=list)

    def cross(self, op: str) -> str | None:
        self.crossings += 1
        kind = self.at.get(self.crossings)
        if kind is not None:
            self.fired.append((self.crossings, op, kind))
        return kind


Check = Callable[[Notice, str], None]
"""Called at each release the platform accepts (notice as the agent holds it, actor), before it is recorded."""
Acted = Callable[[str, str], None]
"""Called at each drain or reset that reaches the host (op, actor), before it acts."""


class Boundary:
    """One incarnation's crossings: dead incarnations cannot cross, and a crash may fire before or after."""

    def __init__(self, life: Life, faults: BoundaryFaults, on_crash: Callable[[str], None]) -> None:
        self.life, self._faults, self._on_crash = life, faults, on_crash

    def before(self, op: str) -> str | None:
        self.life.check()
        kind = self._faults.cross(op)
        if kind == "crash_before":
            self.crash(f"crash before {op}")
        return kind

    def after(self, op: str, kind: str | None) -> None:
        if kind == "crash_after":
            self.crash(f"crash after {op}")

    def crash(self, why: str) -> None:
        self.life.alive = False
        self._on_crash(why)
        raise Crash(why)


class HookView:
    """The app's drain hook as one agent incarnation sees it (the agent's `DrainHook`)."""

    def __init__(self, host: AgentHost, clock: WaitingClock, boundary: Boundary, acted: Acted) -> None:
        self._host, self._clock, self._boundary, self._acted = host, clock, boundary, acted

    async def drain(self, rate_per_s: float) -> dict[str, Any]:
        kind = self._boundary.before("drain")
        self._acted("drain", ACTOR.get())
        try:
            answer = await self._host.app_drain(rate_per_s, self._clock)
        finally:
            self._boundary.life.check()
        self._boundary.after("drain", kind)
        return answer

    async def aclose(self) -> None:
        return None


class SocketsView:
    """The kernel's count and reset (`ss`, `ss -K`) as one incarnation sees them (the agent's `Sockets`)."""

    port = 8443

    def __init__(self, host: AgentHost, clock: WaitingClock, boundary: Boundary, acted: Acted) -> None:
        self._host, self._clock, self._boundary, self._acted = host, clock, boundary, acted

    async def count(self) -> int:
        kind = self._boundary.before("count")
        await self._host.hang_if_out("count", self._clock)
        self._boundary.life.check()
        self._host.fail_if_out("count")
        count = await self._host.connections()
        self._boundary.after("count", kind)
        return count

    async def reset(self) -> int:
        kind = self._boundary.before("reset")
        await self._host.hang_if_out("reset", self._clock)
        self._boundary.life.check()
        self._host.fail_if_out("reset")
        self._acted("reset", ACTOR.get())
        reset = await self._host.reset()
        self._boundary.after("reset", kind)
        return reset


class ReleaseView:
    """The platform's release (Azure's StartRequests) as one incarnation sees it (the agent's
    `PlatformRelease`); a withdrawn notice's approval is refused, which the real release logs and ignores."""

    def __init__(self, host: AgentHost, notices: dict[str, PlatformNotice], boundary: Boundary,
                 check: Check, incarnation: int) -> None:
        self._host, self._notices, self._boundary = host, notices, boundary
        self._check, self._incarnation = check, incarnation

    async def release(self, notice: Notice) -> None:
        kind = self._boundary.before("release")
        self._host.fail_if_out("release")
        held = self._notices.get(notice.id)
        if held is not None and held.held:
            self._check(notice, ACTOR.get())
            held.releases.append((self._host.clock.true, ACTOR.get(), self._incarnation))
        self._boundary.after("release", kind)


class FaultyStore:
    """The real state file (`keeping.NoticeFile`), each write a boundary crossing (the book's `NoticeStore`)."""

    def __init__(self, file: NoticeFile, boundary: Boundary, notices: dict[str, PlatformNotice]) -> None:
        self._file, self._boundary, self._notices = file, boundary, notices

    def load(self) -> list[Notice]:
        self._boundary.life.check()
        return self._file.load()

    def save(self, notices: Iterable[Notice]) -> None:
        kind = self._boundary.before("save")
        kept = list(notices)
        self._file.save(kept)
        for notice in kept:
            held = self._notices.get(notice.id)
            if held is not None and notice.state is NoticeState.RELEASED and held.releases:
                held.recorded = True
        self._boundary.after("save", kind)

