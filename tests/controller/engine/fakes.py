"""In-memory stand-ins for every Protocol the engine calls, all driven by one fake clock.

`FakeHost` behaves like a server plus its node agent: a socket count that falls at the drain rate once a drain
was requested (or not, for a server that ignores drains), a kernel count, and a reset that zeroes it. Its
count is a function of the fake clock, so a test says "advance 2 s" and the host has drained 2 s worth.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.budget import Budget
from controller.core.errors import DrainctlError
from controller.core.models import Drain, EventKind, LifecycleEvent
from controller.core.ports import AsyncListener, Listener, Releaser
from controller.core.settings import EngineConfig
from controller.engine.running import Engine
from controller.engine.verifying import Verifier
from controller.hosts.client import AgentTimeout, AgentUnauthorized, AgentUnreachable
from controller.journal.sqlite import SqliteJournal
from controller.listeners.metrics import EngineMetrics
from tests.support.budgets import TEST_BUDGET

T0 = 1_700_000_000.0

BUDGET = TEST_BUDGET
"""The shared test budget: 20 s graceful drain, reset after 3 s without progress, release 5 s before the deadline."""

SETTINGS = EngineConfig(poll_interval_s=0.5, retry_initial_s=0.5, retry_max_s=2.0)


APP_TIMEOUT_S = 1.0
"""How long a stopped app keeps the agent's drain call waiting before it times out."""


class FakeClock:
    """Time that moves only when a test moves it: the wall clock (`now`) and the monotonic one move together,
    except when the wall clock steps (`step`: an NTP correction, forward or back)."""

    def __init__(self, now: float = T0) -> None:
        self._now = now
        self._monotonic = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def set(self, when: float) -> None:
        assert when >= self._now, "time does not go backwards"
        self._monotonic += when - self._now
        self._now = when

    def step(self, seconds: float) -> None:
        """The wall clock jumps by `seconds` (negative: back); no time passes."""
        self._now += seconds


@dataclass
class FakeHost:
    """A server and its agent. `behaviour`: graceful, ignore (ignores drains), stopped (SIGSTOPped app:
    drain times out, the kernel still counts and resets), unreachable (agent down), unauthorized (wrong token).
    """

    clock: FakeClock
    sockets: int = 100
    behaviour: str = "graceful"
    app_rate_per_s: float | None = None
    """How fast the app really drains (None: the requested rate). Lower: a slow but moving drain."""
    app_timeout_s: float = APP_TIMEOUT_S
    """behaviour "stopped": how long the drain call waits for the app before it times out."""
    drains: list[tuple[float, float]] = field(default_factory=list)
    """(time, rate_per_s) of each drain request received."""
    resets: list[tuple[float, int]] = field(default_factory=list)
    counts: int = 0
    drain_blocks: asyncio.Event | None = None
    """Set to an Event to make the drain call hang until it is set (a controller killed mid-call)."""
    _drain_at: float | None = None
    _rate: float = 0.0
    _base: int = 0

    def refill(self, sockets: int) -> None:
        """New clients arrived (the instance was reused): a new drain starts from `sockets`."""
        self.sockets, self._drain_at = sockets, None

    def remaining(self) -> int:
        if self._drain_at is None:
            return self.sockets
        gone = math.floor(self._rate * (self.clock.monotonic() - self._drain_at) + 1e-9)  # true time: no steps
        return max(0, self._base - gone)

    async def drain(self, rate_per_s: float) -> None:
        self.drains.append((self.clock.now(), rate_per_s))
        self._fail_if_down()
        if self.behaviour == "stopped":
            self.clock.set(self.clock.now() + self.app_timeout_s)  # the agent waited this long for the stopped app
            raise AgentTimeout(f"agent: POST /v1/drain: app did not answer in {self.app_timeout_s:g} s")
        if self.behaviour == "graceful" and self._drain_at is None:
            self._base, self._drain_at = self.remaining(), self.clock.monotonic()
            self._rate = self.app_rate_per_s or rate_per_s
        if self.drain_blocks is not None:
            await self.drain_blocks.wait()  # the app drains; the answer never comes back

    async def connections(self) -> int:
        self._fail_if_down()
        self.counts += 1
        return self.remaining()

    async def reset(self) -> int:
        self._fail_if_down()
        count = self.remaining()
        self.sockets, self._drain_at = 0, None
        self.resets.append((self.clock.now(), count))
        return count

    def _fail_if_down(self) -> None:
        if self.behaviour == "unreachable":
            raise AgentUnreachable("agent http://10.0.0.9:9100 unreachable: ConnectError: connection refused")
        if self.behaviour == "unauthorized":
            raise AgentUnauthorized("agent refused the token (401)")


class FakeHosts:
    def __init__(self, hosts: Mapping[str, FakeHost]) -> None:
        self.hosts = dict(hosts)

    def host(self, instance: str) -> FakeHost:
        return self.hosts[instance]


class FakeGauge:
    """Prometheus's view: a value per instance, None for a stale series, or an error when unreachable."""

    def __init__(self) -> None:
        self.values: dict[str, int | None] = {}
        self.error: DrainctlError | None = None

    async def open_sockets(self, instance: str) -> int | None:
        if self.error is not None:
            raise self.error
        return self.values.get(instance)


@dataclass
class Release:
    at: float
    drain: Drain
    refs: tuple[str, ...]


class FakeReleaser:
    """A platform that holds until released. `failures`: errors to raise on the next calls, in order."""

    holds = True

    def __init__(self, clock: FakeClock, *, on_release: Callable[[Drain], None] | None = None) -> None:
        self.clock = clock
        self.releases: list[Release] = []
        self.failures: list[DrainctlError] = []
        self.always: DrainctlError | None = None
        self.attempts = 0
        self._on_release = on_release

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        self.attempts += 1
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        if self._on_release is not None:
            self._on_release(drain)
        self.releases.append(Release(self.clock.now(), drain, handles))


@dataclass
class World:
    """One engine over fakes, and the means to move its time."""

    engine: Engine
    clock: FakeClock
    hosts: dict[str, FakeHost]
    gauge: FakeGauge
    releaser: FakeReleaser
    store: SqliteJournal
    metrics: EngineMetrics

    def notice(self, instance: str, *, in_s: float = 60.0, ref: str | None = None) -> LifecycleEvent:
        """A platform notice (local source): `instance` is deleted `in_s` from now."""
        return LifecycleEvent.create(instance=instance, kind=EventKind.TERMINATE, not_after=self.clock.now() + in_s,
                                     source="local", ref=ref or f"notice-{instance}-{in_s:g}")

    async def advance(self, seconds: float) -> None:
        """Move the fake clock forward, running every pass at the moment it is due."""
        end = self.clock.now() + seconds
        await self.engine.run_due()
        while (due := self.engine.next_due()) is not None and due <= end:
            self.clock.set(max(due, self.clock.now()))
            await self.engine.run_due()
        self.clock.set(end)
        await self.engine.run_due()

    async def settle(self, *, limit_s: float = 600.0) -> None:
        """Run until nothing is due any more (bounded)."""
        end = self.clock.now() + limit_s
        await self.engine.run_due()
        while (due := self.engine.next_due()) is not None and due <= end:
            self.clock.set(max(due, self.clock.now()))
            await self.engine.run_due()

    def steps(self, instance: str) -> list[str]:
        drain = self.engine.get(instance)
        assert drain is not None
        return [f"{t.phase}:{t.step}" for t in self.engine.journal(drain.id)]

    def phases(self, instance: str) -> list[str]:
        drain = self.engine.get(instance)
        assert drain is not None
        phases: list[str] = []
        for t in self.engine.journal(drain.id):
            if not phases or phases[-1] != t.phase:
                phases.append(str(t.phase))
        return phases


def make_world(
    journal: Path,
    *,
    hosts: Mapping[str, FakeHost] | None = None,
    pools: Mapping[str, str] | None = None,
    slots: int = 1,
    budget: Budget = BUDGET,
    clock: FakeClock | None = None,
    releaser: FakeReleaser | None = None,
    gauge: FakeGauge | None = None,
    store: SqliteJournal | None = None,
    settings: EngineConfig = SETTINGS,
    listeners: Sequence[Listener | AsyncListener] = (),
    more_releasers: Mapping[str, Releaser] | None = None,
) -> World:
    """An engine over fakes; its metrics listener comes first, then `listeners`. `releaser` is the local
    source's; `more_releasers`, by source, other platforms' (an episode can hold handles of two)."""
    clock = clock or FakeClock()
    hosts = dict(hosts) if hosts is not None else {"A": FakeHost(clock)}
    gauge = gauge or FakeGauge()
    releaser = releaser or FakeReleaser(clock)
    store = store or SqliteJournal(journal)
    metrics = EngineMetrics()
    releasers: dict[str, Releaser] = {"local": releaser, **(more_releasers or {})}
    engine = Engine(
        store=store,
        hosts=FakeHosts(hosts),
        verifier=Verifier(gauge),
        releasers=releasers,
        inventory=dict(pools) if pools is not None else {name: "web" for name in hosts},
        slots=lambda pool: slots,
        budget=budget,
        settings=settings,
        clock=clock,
        listeners=[metrics, *listeners],
    )
    return World(engine, clock, hosts, gauge, releaser, store, metrics)


def metric(world: World, name: str, labels: Mapping[str, str] | None = None) -> float:
    value = world.metrics.registry.get_sample_value(name, dict(labels or {}))
    return 0.0 if value is None else value

