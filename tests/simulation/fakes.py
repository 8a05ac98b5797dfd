"""The simulated world the engine acts on: hosts with their agents, platforms holding handles, a faulty journal.

The truth (`SimHost`, `Platform`, `JournalFaults`) outlives a controller; each controller incarnation sees it
through views (`HostsView`, `ReleaserView`, `FaultyJournal`) that raise `Crash` once that controller is dead, so
nothing a dropped engine still had in flight reaches the world. Errors are the ones the real boundaries raise:
the agent client's `AgentTimeout`, `AgentUnreachable`, `AgentUnavailable(status=503)`, the journal's `JournalError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from controller.core.errors import DrainctlError, JournalError
from controller.core.models import Disposition, Drain, LifecycleEvent, Transition
from controller.hosts.client import AgentError, AgentTimeout, AgentUnavailable, AgentUnreachable
from controller.journal.sqlite import SqliteJournal
from tests.simulation.clocks import SimClock

R = TypeVar("R")

STOPPED_APP_WAIT_S = 1.0
"""How long a stopped app keeps the agent's drain call waiting before the agent answers with a timeout. Not
spent on the fake clock: moving the one clock inside a call would hold up every other instance's pass running
concurrently in the same round, which real passes are not."""


class Crash(BaseException):
    """The controller process dies here (not an `Exception`: nothing in the engine may catch it)."""


def agent_error(kind: str, what: str) -> DrainctlError:
    """The error the real agent client raises for a fault of `kind`: timeout, unreachable, 503 or refuse (409,
    permanent: the platform will not take this release)."""
    if kind == "refuse":
        return AgentError(f"agent: {what}: 409 Conflict (the platform refused)", status=409)
    if kind == "timeout":
        return AgentTimeout(f"agent: {what}: timed out")
    if kind == "unreachable":
        return AgentUnreachable(f"agent: {what}: ConnectError: connection refused")
    return AgentUnavailable(f"agent: {what}: 503 Service Unavailable (ss timed out)", status=503)


@dataclass(frozen=True)
class Outage:
    """From `start` to `end` (true time) the agent's `op` (drain, count, reset, release; `release gcp`: the
    second platform's release) fails with `kind`."""

    start: float
    end: float
    op: str
    kind: str


@dataclass
class SimHost:
    """A server and its node agent. `behaviour`: graceful (drains at `app_rate_per_s`, or the requested rate),
    ignore (accepts a drain and keeps every socket), stopped (the drain call times out; the kernel still counts
    and resets). `stuck`: sockets the kernel cannot destroy, which a reset skips while reporting success."""

    clock: SimClock
    sockets: int = 0
    behaviour: str = "graceful"
    app_rate_per_s: float | None = None
    stuck: int = 0
    outages: list[Outage] = field(default_factory=list)
    drain_requests: list[tuple[float, int]] = field(default_factory=list)
    """(true time, episode id) of every drain request that reached the host."""
    last_count: int | None = None
    """The last kernel count the agent answered."""
    reset_since_count: bool = False
    """A reset completed after `last_count` was answered."""
    _drain_at: float | None = None
    _rate: float = 0.0
    _base: int = 0

    def refill(self, sockets: int, behaviour: str, app_rate_per_s: float | None) -> None:
        """A new lifecycle operation on a server full of clients."""
        self.sockets, self.behaviour, self.app_rate_per_s, self._drain_at = sockets, behaviour, app_rate_per_s, None
        self.last_count, self.reset_since_count = None, False

    def remaining(self) -> int:
        if self._drain_at is None:
            return self.sockets
        gone = math.floor(self._rate * (self.clock.true - self._drain_at) + 1e-9)
        return max(min(self.stuck, self._base), self._base - gone)

    def fail_if_out(self, op: str) -> None:
        now = self.clock.true
        for outage in self.outages:
            if outage.op == op and outage.start <= now < outage.end:
                raise agent_error(outage.kind, op)

    async def drain(self, rate_per_s: float, episode: int) -> None:
        self.drain_requests.append((self.clock.true, episode))
        self.fail_if_out("drain")
        if self.behaviour == "stopped":
            raise AgentTimeout(f"agent: POST /v1/drain: app did not answer in {STOPPED_APP_WAIT_S:g} s")
        if self.behaviour == "graceful" and self._drain_at is None:
            self._base, self._drain_at = self.remaining(), self.clock.true
            self._rate = self.app_rate_per_s or rate_per_s

    async def connections(self) -> int:
        self.fail_if_out("count")
        self.last_count, self.reset_since_count = self.remaining(), False
        return self.last_count

    async def reset(self) -> int:
        self.fail_if_out("reset")
        left = self.remaining()
        kept = min(self.stuck, left)
        self.sockets, self._drain_at = kept, None
        self.reset_since_count = True
        return left - kept


@dataclass
class Handle:
    """A platform's hold on an instance, released by `ref`; `not_after` is the earliest deadline it announced."""

    instance: str
    ref: str
    not_after: float
    releases: list[tuple[float, int]] = field(default_factory=list)
    """(true time, fault epoch) of each successful release; the epoch counts crashes and journal faults, after
    which a repeated release is the design's idempotent retry."""
    source: str = "local"
    """The platform that holds it (only its own releaser may release it)."""
    refused: bool = False
    """The platform refused a release of it (for good): it proceeds at its deadline on its own."""


@dataclass
class Platform:
    """The platform side of the notices: every handle it holds and what released it."""

    handles: dict[str, Handle] = field(default_factory=dict)

    def announce(self, instance: str, ref: str, not_after: float, source: str = "local") -> Handle:
        handle = self.handles.get(ref)
        if handle is None:
            handle = self.handles[ref] = Handle(instance, ref, not_after, source=source)
        handle.not_after = min(handle.not_after, not_after)
        return handle


Check = Callable[[Drain, tuple[str, ...], str], None]
"""Called with the episode at each successful release, before it is recorded (the invariants' hook)."""


class Life:
    """One controller incarnation: alive until it crashes."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.alive = True

    def check(self) -> None:
        if not self.alive:
            raise Crash(f"controller {self.number} is dead")


class HostView:
    """One host as one controller incarnation sees it (the `HostActions` port)."""

    def __init__(self, host: SimHost, life: Life, episode: Callable[[], int], before_call: Callable[[], None]) -> None:
        self._host, self._life, self._episode, self._before_call = host, life, episode, before_call

    async def drain(self, rate_per_s: float) -> None:
        self._enter()
        await self._host.drain(rate_per_s, self._episode())

    async def connections(self) -> int:
        self._enter()
        return await self._host.connections()

    async def reset(self) -> int:
        self._enter()
        return await self._host.reset()

    def _enter(self) -> None:
        self._life.check()
        self._before_call()  # an event delivered while the pass waits on this call (issue 9, case 1)
        self._life.check()


class HostsView:
    def __init__(self, views: dict[str, HostView]) -> None:
        self._views = views

    def host(self, instance: str) -> HostView:
        return self._views[instance]


class ReleaserView:
    """One platform's releaser as one incarnation sees it: releases the handles it is given; its faults are the
    host's outages of `op` (`release` for the notices platform, released through the agent)."""

    holds = True

    def __init__(self, platform: Platform, hosts: dict[str, SimHost], life: Life, check: Check,
                 epoch: Callable[[], int], *, source: str = "local", op: str = "release") -> None:
        self._platform, self._hosts, self._life, self._check, self._epoch = platform, hosts, life, check, epoch
        self._source, self._op = source, op

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        self._life.check()
        try:
            self._hosts[drain.instance].fail_if_out(self._op)
        except AgentError:
            for ref in handles:
                self._platform.handles[ref].refused = True
            raise
        self._check(drain, handles, self._source)
        for ref in handles:
            self._platform.handles[ref].releases.append((self._hosts[drain.instance].clock.true, self._epoch()))


@dataclass
class JournalFaults:
    """Faults by journal write number (1, 2, ... over every incarnation): error, crash_before, crash_after."""

    at: dict[int, str] = field(default_factory=dict)
    writes: int = 0
    fired: list[tuple[int, str]] = field(default_factory=list)

    def next(self) -> str | None:
        self.writes += 1
        fault = self.at.get(self.writes)
        if fault is not None:
            self.fired.append((self.writes, fault))
        return fault


class FaultyJournal:
    """The real SQLite journal, with faults injected at chosen writes (the `Journal` port)."""

    def __init__(self, path: Path, faults: JournalFaults, life: Life) -> None:
        self._store = SqliteJournal(path)
        self._faults, self._life = faults, life

    def _write(self, write: Callable[[], R]) -> R:
        self._life.check()
        fault = self._faults.next()
        if fault == "error":
            raise JournalError(f"journal: write {self._faults.writes} failed: disk I/O error (simulated)")
        if fault == "crash_before":
            self._life.alive = False
            raise Crash(f"crash before journal write {self._faults.writes}")
        result = write()
        if fault == "crash_after":
            self._life.alive = False
            raise Crash(f"crash after journal write {self._faults.writes}")
        return result

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        return self._write(lambda: self._store.create(draft, event=event, at=at, step=step, detail=detail))

    def record(
        self, before: Drain, after: Drain, *, step: str, detail: str | None = None,
        event: LifecycleEvent | None = None, disposition: Disposition | None = None,
    ) -> Drain:
        return self._write(lambda: self._store.record(before, after, step=step, detail=detail, event=event,
                                                      disposition=disposition))

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        self._write(lambda: self._store.log_event(event, at=at, disposition=disposition, drain_id=drain_id))

    def seen(self, event_id: str) -> bool:
        self._life.check()
        return self._store.seen(event_id)

    def unfinished(self) -> list[Drain]:
        return self._store.unfinished()

    def latest(self, instance: str) -> Drain | None:
        return self._store.latest(instance)

    def drains(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        return self._store.drains(instance=instance, limit=limit)

    def transitions(
        self, *, drain_id: int | None = None, after_seq: int | None = None, limit: int = 1000
    ) -> list[Transition]:
        return self._store.transitions(drain_id=drain_id, after_seq=after_seq, limit=limit)

    def close(self) -> None:
        self._store.close()
