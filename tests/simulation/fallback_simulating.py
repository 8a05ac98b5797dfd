"""Plays one fallback scenario against the real agent (`NodeAgent`, `NoticeBook`, `NoticeFile`, `run_fallback`).

    result = await simulate(generate(seed), directory=Path("/dev/shm"))
    result.ok, result.violations, result.trace

Time is simulated: every sleep of the agent ends when the simulation moves the true time past it, and the
simulation moves it only once every task of the agent and the controller waits on the clock. The world (host,
platform, boundary faults, true time) outlives the agent: a crash (between steps, or before or after any
boundary crossing) kills the incarnation, cancels what it had in flight, and after `restart_s` a new agent
starts on the same state file (`NodeAgent.restore`, as `drainctl agent` does) and the platform's watcher
delivers the notices it holds again. The fake controller calls the agent's methods as its HTTP routes do.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.agent.apphook import AppHookError
from controller.agent.keeping import NoticeFile
from controller.agent.metrics import AgentMetrics
from controller.agent.node import NodeAgent
from controller.agent.notices import Notice, NoticeBook
from controller.core.errors import DrainctlError
from tests.controller.engine.fakes import T0
from tests.simulation import fallback_invariants as invariants
from tests.simulation.fakes import Crash, Life, Outage
from tests.simulation.fallback_invariants import Ownership
from tests.simulation.fallback_scenarios import Scenario, Step
from tests.simulation.fallback_world import (
    ACTOR,
    AgentHost,
    Boundary,
    BoundaryFaults,
    FaultyStore,
    HookView,
    PlatformNotice,
    ReleaseView,
    SocketsView,
    WaitingClock,
)
from tests.simulation.invariants import Violation

SETTLE_S = 30.0
"""How long after the last step and the last deadline the simulation runs on."""
MAX_WAKES = 100_000
"""Clock wake-ups of one scenario beyond which it counts as a livelock."""
MAX_YIELDS = 10_000
"""Loop turns to wait for every task to sleep again, beyond which they count as livelocked."""
DOWN_SLACK_S = 0.0
"""A notice whose deadline came while the agent was down (this much before it came back) is excused: a
restarted agent must still release by `not_after` if it runs again before it."""
RELEASE_SLACK_S = 2.5
"""A notice whose platform release was failing this soon before its deadline is excused (the fallback retries
about once a second, on a wall clock that may be 1.5 s off)."""
CONTROLLER_RATE_PER_S = 200.0


@dataclass
class Result:
    scenario: Scenario
    violations: list[Violation] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


async def simulate(scenario: Scenario, *, directory: Path) -> Result:
    path = directory / f"fallback-{scenario.seed}.json"
    path.unlink(missing_ok=True)
    simulation = FallbackSimulation(scenario, path)
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(simulation.unhandled)
    try:
        await simulation.run()
    finally:
        await simulation.stop()
        loop.set_exception_handler(previous)
        path.unlink(missing_ok=True)
    return simulation.result


class FallbackSimulation:
    def __init__(self, scenario: Scenario, path: Path) -> None:
        self.result = Result(scenario)
        self._scenario, self._config, self._path = scenario, scenario.config, path
        self._clock = WaitingClock()
        outages = [Outage(T0 + o.start, T0 + o.end, o.op, o.kind) for o in scenario.outages]
        self._host = AgentHost(self._clock, sockets=scenario.sockets, behaviour=scenario.behaviour,
                               app_rate_per_s=scenario.app_rate_per_s, stuck=scenario.stuck, outages=outages)
        self._platform: dict[str, PlatformNotice] = {}
        self._grace: dict[str, float | None] = {}
        self._seen: dict[str, tuple[float, int]] = {}
        """The true time the agent first saw each notice, and in which incarnation."""
        self._controller_drains: list[tuple[float, int]] = []
        """(true time, incarnation) of each controller drain the agent took."""
        self._faults = BoundaryFaults(dict(scenario.crashes))
        self._incarnation = 0
        self._down: list[list[float]] = []
        """[from, until] of each time the agent was down (until: inf while it is)."""
        self._up_at: float | None = None
        self._buried = True
        self._wakes = 0
        self._stepped = False
        self._controllers: set[asyncio.Task[None]] = set()
        self._life, self._agent = self._build()

    # --- the run -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        self._agent.restore()
        for step in self._scenario.steps:
            await self._advance_to(T0 + step.at)
            if not self.result.ok:
                return
            self._note(step.describe())
            self._apply(step)
            await self._settle()
            self._check()
        last = max([T0 + s.at for s in self._scenario.steps] + [n.not_after for n in self._platform.values()])
        await self._advance_to(last + SETTLE_S)

    async def _advance_to(self, true_target: float) -> None:
        await self._settle()
        while self.result.ok:
            due = min((t for t in (self._clock.next_wake(), self._up_at) if t is not None), default=None)
            if due is None or due > true_target:
                break
            self._clock.advance_to(due)
            await self._wake()
        if self.result.ok:
            self._clock.advance_to(true_target)
            await self._wake()

    async def _wake(self) -> None:
        self._wakes += 1
        if self._wakes > MAX_WAKES:
            self._violate(f"livelock: more than {MAX_WAKES} wake-ups")
            return
        if self._up_at is not None and self._up_at <= self._clock.true:
            self._restart()
        self._clock.wake_due()
        await self._settle()
        self._check()

    async def _settle(self) -> None:
        """Let every task run until none can (each waits on the clock, on another task, or is done)."""
        loop = asyncio.get_running_loop()
        for _ in range(MAX_YIELDS):
            if not self._life.alive and not self._buried:
                await self._bury()
            await asyncio.sleep(0)
            if not _ready(loop):
                return
        self._violate("livelock: tasks that never wait on the clock")

    async def stop(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def unhandled(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A task of a killed agent ended with `Crash`: expected. Anything else is a bug of the agent."""
        if isinstance(context.get("exception"), Crash):
            return
        self._violate(f"unhandled: {context.get('message')} {context.get('exception')!r}")

    # --- agent lives ---------------------------------------------------------------------------------------

    def _build(self) -> tuple[Life, NodeAgent]:
        life = Life(self._incarnation)
        boundary = Boundary(life, self._faults, self._crashed)
        store = FaultyStore(NoticeFile(self._path, clock=self._clock.now), boundary, self._platform)
        release = ReleaseView(self._host, self._platform, boundary, self._check_release, self._incarnation)
        agent = NodeAgent(
            sockets=SocketsView(self._host, self._clock, boundary, self._check_act),
            hook=HookView(self._host, self._clock, boundary, self._check_act),
            book=NoticeBook(release, self._clock, store),
            metrics=AgentMetrics(SocketsView.port),
            fallback=self._config,
            clock=self._clock,
        )
        return life, agent

    def _crashed(self, why: str) -> None:
        self._note(f"  CRASH: {why}; the agent is down for {self._scenario.restart_s:.2f} s")
        self._buried = False
        self._up_at = self._clock.true + self._scenario.restart_s
        self._down.append([self._clock.true, math.inf])

    async def _bury(self) -> None:
        """Cancel every task of the dead agent (what it had in flight); the controller's tasks live on."""
        self._buried = True
        current = asyncio.current_task()
        orphans = [t for t in asyncio.all_tasks() if t is not current and t not in self._controllers]
        for task in orphans:
            task.cancel()
        await asyncio.gather(*orphans, return_exceptions=True)

    def _restart(self) -> None:
        self._up_at = None
        self._down[-1][1] = self._clock.true
        self._incarnation += 1
        self._life, self._agent = self._build()
        reopened = self._agent.restore()
        self._note(f"  agent {self._incarnation} started: restored {[n.id for n in reopened]} from the state file")
        for held in self._platform.values():
            if held.held and not held.releases:
                self._deliver(held.id)

    def _kill(self, why: str) -> None:
        if self._life.alive:
            self._life.alive = False
            self._crashed(why)

    # --- steps ---------------------------------------------------------------------------------------------

    def _apply(self, step: Step) -> None:
        if step.action in ("notice", "shorten"):
            self._announce(step)
        elif step.action == "withdraw":
            self._platform[step.notice].withdrawn_at = self._clock.true
        elif step.action == "controller":
            task = asyncio.get_running_loop().create_task(self._controller(step))
            self._controllers.add(task)
            task.add_done_callback(self._controllers.discard)
        elif step.action == "crash":
            self._kill("killed between steps")
        else:
            self._clock.step(step.offset)
            self._stepped = True

    def _announce(self, step: Step) -> None:
        held = self._platform.get(step.notice)
        if held is not None and (held.releases or not held.held):
            self._note("  (not delivered: the platform no longer lists a released or withdrawn notice)")
            return
        if held is None:
            held = self._platform[step.notice] = PlatformNotice(step.notice, T0 + step.deadline)
            self._grace[step.notice] = step.grace_s
        held.not_after = min(held.not_after, T0 + step.deadline)
        self._deliver(step.notice)

    def _deliver(self, notice_id: str) -> None:
        """The platform's watcher tells the agent (when it runs) about a notice the platform holds."""
        if not self._life.alive:
            return
        held = self._platform[notice_id]
        try:
            _notice, new = self._agent.add_notice(notice_id, "terminate", held.not_after, source="azure",
                                                  grace_s=self._grace[notice_id])
        except Crash:
            return
        if new and notice_id not in self._seen:
            self._seen[notice_id] = (self._clock.true, self._incarnation)
        self._note(f"  delivered {notice_id} not_after=+{held.not_after - T0:.2f}" + (" (new)" if new else ""))

    # --- the fake controller -------------------------------------------------------------------------------

    async def _controller(self, step: Step) -> None:
        """Drains through the agent, follows the count, resets what is left by its time, releases; or dies."""
        ACTOR.set("controller")
        until = self._clock.true + step.release_in_s
        while not await self._controller_drain():
            await self._clock.sleep(1.0)
        if step.plan == "dies":
            return
        count: int | None = None
        while self._clock.true < until:
            await self._clock.sleep(1.0)
            count = await self._calling(lambda agent: agent.connections())
            if count == 0:
                break
        if count != 0:
            await self._calling(lambda agent: agent.reset(by="controller"))
        while any(self._open(n) for n in self._platform.values()):
            for notice in [n for n in self._agent.book.unreleased() if self._life.alive]:
                await self._calling(lambda agent, notice=notice: agent.release(notice, by="controller"))
            if self._clock.true > max(n.not_after for n in self._platform.values()):
                return
            await self._clock.sleep(0.5)

    def _open(self, held: PlatformNotice) -> bool:
        return held.held and not held.releases

    async def _controller_drain(self) -> bool:
        """One drain request; whether the agent took it (a failing app hook counts: the agent noted it)."""
        if not self._life.alive:
            return False
        at, incarnation = self._clock.true, self._incarnation
        try:
            await self._agent.drain(CONTROLLER_RATE_PER_S, by="controller")
        except AppHookError:
            pass
        except Crash:
            return False
        self._controller_drains.append((at, incarnation))
        self._note("  the controller's drain reached the agent")
        return True

    async def _calling(self, call: Any) -> Any:
        if not self._life.alive:
            return None
        try:
            return await call(self._agent)
        except (DrainctlError, Crash):
            return None

    # --- invariants ----------------------------------------------------------------------------------------

    def _owner(self, notice: Notice) -> Ownership:
        # a notice whose first delivery crashed after its save: the agent's own record of when it saw it
        seen, incarnation = self._seen.get(notice.id, (notice.seen_at - self._clock.offset, self._incarnation))
        grace = self._config.grace_s if notice.grace_s is None else notice.grace_s
        slack = invariants.SLACK_S + (1.6 if self._stepped else 0.0)
        controller = any(
            seen - self._config.grace_s + slack <= at <= seen + grace - slack and (at >= seen or same == incarnation)
            for at, same in self._controller_drains
        )  # a controller drain before the notice is remembered in memory: not across a restart (docs/simulation.md)
        return Ownership(seen, grace, notice.not_after - self._config.reset_margin_s, controller, slack)

    def _check_release(self, notice: Notice, actor: str) -> None:
        held, host = self._platform[notice.id], self._host
        self._note(f"  release {notice.id} by {actor} (kernel count {host.last_count}, reset since "
                   f"{host.reset_since_count}, open {host.remaining()}, not_after +{held.not_after - T0:.2f})")
        for problem in invariants.at_release(notice, actor, held, host, wall=self._clock.now(),
                                             incarnation=self._incarnation, owner=self._owner(notice),
                                             excused=self._excused(held)):
            self._violate(problem)

    def _check_act(self, op: str, actor: str) -> None:
        self._note(f"  {op} by {actor} ({self._host.remaining()} sockets open)")
        if actor != "agent":
            return
        owners = [(n.id, self._owner(n)) for n in self._agent.book.unreleased()]
        for problem in invariants.at_act(op, self._clock.true, self._clock.now(), owners):
            self._violate(problem)

    def _check(self) -> None:
        spared = [n.id for n in self._platform.values() if self._excused(n)]
        for problem in invariants.unreleased(self._platform.values(), self._clock.true, spared):
            self._violate(problem)

    def _excused(self, held: PlatformNotice) -> bool:
        """The agent was down at or just before the deadline, or the platform's release was failing then."""
        if any(start <= held.not_after and until >= held.not_after - DOWN_SLACK_S for start, until in self._down):
            return True
        return any(o.op == "release" and o.start <= held.not_after and o.end >= held.not_after - RELEASE_SLACK_S
                   for o in self._host.outages)

    def _violate(self, problem: str) -> None:
        invariant, _, detail = problem.partition(": ")
        if any(v.invariant == invariant and v.detail == detail for v in self.result.violations):
            return
        violation = Violation(invariant, self._clock.true - T0, detail)
        self.result.violations.append(violation)
        self._note(violation.describe())

    def _note(self, line: str) -> None:
        self.result.trace.append(f"[+{self._clock.true - T0:7.2f}] {line}")


def _ready(loop: asyncio.AbstractEventLoop) -> int:
    """How many callbacks the loop has ready to run (asyncio keeps them in `_ready`; nothing else here
    schedules any: no I/O, no timers, so an empty queue means every task waits on the simulated clock)."""
    return len(getattr(loop, "_ready"))  # noqa: B009 (a private attribute, read on purpose)
