"""Plays one scenario against the real engine and journal, checking the invariants after every step.

    result = await simulate(generate(seed), cases=frozenset(), directory=Path("/dev/shm"))
    result.ok, result.violations, result.trace

The world (hosts, platform, journal faults, true time) outlives the controller: a crash at any journal write
(or between steps) kills the incarnation, cancels what it had in flight, and a new engine is built on the same
journal file. The platform delivers its open notices again after a restart, and an event whose intake failed
is delivered again at the next step (as a source that marks an event emitted only once it was taken would).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.errors import DrainctlError
from controller.core.models import Disposition, Drain, EventKind, LifecycleEvent
from controller.core.ports import Releaser
from controller.engine.reconciling import Submission
from controller.engine.running import Engine
from controller.engine.verifying import Verifier
from tests.controller.engine.fakes import SETTINGS, T0, FakeGauge
from tests.simulation import invariants
from tests.simulation.clocks import SimClock
from tests.simulation.fakes import (
    Crash,
    FaultyJournal,
    HostsView,
    HostView,
    JournalFaults,
    Life,
    Outage,
    Platform,
    ReleaserView,
    SimHost,
)
from tests.simulation.invariants import Violation
from tests.simulation.scenarios import SECOND, Scenario, Step
from tests.support.budgets import TEST_BUDGET

POOL = "web"
SETTLE_S = 40.0
"""How long after the last step and the last deadline the simulation runs on."""
ARMED_WAIT_S = 3.0
"""A notice armed to arrive while its instance's next agent call is in flight (case 1) arrives at the latest
this long after its step when no call comes (a pending drain waiting for a slot makes none): the platform
delivers it whatever the controller does."""
MAX_PASSES = 20_000
"""Passes of one scenario beyond which it counts as a livelock."""

Delivery = Callable[[], Awaitable[None]]


@dataclass
class Result:
    scenario: Scenario
    cases: frozenset[str]
    violations: list[Violation] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


async def simulate(
    scenario: Scenario, *, cases: frozenset[str], directory: Path, journal_lines: bool = False
) -> Result:
    """Play `scenario` with the steps of `cases` switched on (and every step of no case)."""
    path = directory / f"sim-{scenario.seed}.sqlite"
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    simulation = Simulation(scenario, cases, path)
    try:
        await simulation.run()
        if journal_lines and not simulation.result.ok:
            simulation.dump_journal()
    finally:
        simulation.close()
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
    return simulation.result


class Simulation:
    def __init__(self, scenario: Scenario, cases: frozenset[str], path: Path) -> None:
        self.result = Result(scenario, cases)
        self._steps = [s for s in scenario.steps if s.case is None or s.case in cases]
        self._path = path
        self._clock = SimClock()
        self._hosts = {name: SimHost(self._clock) for name in scenario.instances}
        self._platform = Platform()
        self._faults = JournalFaults(dict(scenario.journal_faults))
        self._crashes = 0
        self._passes = 0
        self._redeliver: list[Delivery] = []
        self._armed: dict[str, list[tuple[float, LifecycleEvent]]] = {}
        """By instance: events to deliver during its next agent call, each with the latest true time to."""
        self._open: dict[str, LifecycleEvent] = {}
        """The latest event of each handle the platform holds (delivered again after a restart)."""
        self._accepted: list[tuple[LifecycleEvent, bool]] = []
        """Every event taken (started or merged), and whether its handle joined the episode."""
        self._requests: dict[int, str] = {}
        self._standby: tuple[Life, FaultyJournal, Engine] | None = None
        """The replica that lost the leadership, as it was (case 11)."""
        self._life = Life(0)
        self._journal = FaultyJournal(path, self._faults, self._life)
        self._engine = self._build()

    # --- the run -------------------------------------------------------------------------------------------

    async def run(self) -> None:
        for step in self._steps:
            await self._advance_to(T0 + step.at)
            if not self.result.ok:
                return
            self._note(step.describe())
            await self._apply(step)
            await self._flush()
            self._check()
            if not self.result.ok:
                return
        await self._finish()

    async def _finish(self) -> None:
        for events in self._armed.values():
            for _, event in events:
                self._redeliver.append(self._submitting(event))
        self._armed.clear()
        await self._flush()
        last = max((s.at for s in self._steps), default=0.0) + T0
        deadlines = [h.not_after for h in self._platform.handles.values()]
        await self._advance_to(max([last, *deadlines]) + SETTLE_S)
        self._check_nothing_lost()

    async def _advance_to(self, true_target: float) -> None:
        """Run every pass at the moment it is due, up to `true_target`."""
        await self._run_due()
        while self.result.ok and (due := self._next_due()) is not None:
            if due > true_target:
                break
            self._clock.advance_to(due)
            await self._deliver_overdue()
            await self._run_due()
        if self.result.ok:  # the run ends at its first violation, so the trace ends there too
            self._clock.advance_to(true_target)
            await self._deliver_overdue()
            await self._run_due()

    def _next_due(self) -> float | None:
        """The true time of the next pass or of the next armed event's latest delivery."""
        due = self._engine.next_due()
        dues = [latest for events in self._armed.values() for latest, _ in events]
        if due is not None:
            dues.append(self._clock.to_true(due))
        return min(dues, default=None)

    async def _deliver_overdue(self) -> None:
        """Deliver the armed events that no agent call met in time (`ARMED_WAIT_S`)."""
        for instance, events in list(self._armed.items()):
            overdue = [event for latest, event in events if latest <= self._clock.true]
            if not overdue:
                continue
            self._armed[instance] = [(latest, e) for latest, e in events if latest > self._clock.true]
            for event in overdue:
                self._note(f"  {instance} {event.ref}: no agent call in {ARMED_WAIT_S:g} s, delivered anyway")
                self._redeliver.append(self._submitting(event))
        await self._flush()

    async def _run_due(self) -> None:
        self._passes += 1
        if self._passes > MAX_PASSES:
            self._violate(f"livelock: more than {MAX_PASSES} rounds of passes")
            return
        for _ in range(50):
            try:
                await self._engine.run_due()
                break
            except Crash as crash:
                await self._restart(crash)
            except RuntimeError as exc:
                self._violate(f"livelock: {exc}")
                break
        await self._flush()
        self._check()

    # --- steps ---------------------------------------------------------------------------------------------

    async def _apply(self, step: Step) -> None:
        handler: dict[str, Callable[[Step], Awaitable[None]]] = {
            "notice": self._notice, "manual": self._manual, "retry": self._manual, "outage": self._outage,
            "crash": self._crash_now, "clock": self._clock_step, "stuck": self._stuck, "leader": self._leader,
        }
        await handler[step.action](step)

    async def _notice(self, step: Step) -> None:
        host, drain = self._hosts[step.instance], self._engine.get(step.instance)
        idle = drain is None or drain.finished
        known = self._platform.handles.get(step.ref)
        if known is not None and (known.releases or known.refused) and known.not_after != T0 + step.deadline:
            self._note("  (not announced: the platform does not change a handle it has released or refused)")
            return
        if idle and not any(ref.startswith(step.ref[:-1]) for ref in self._platform.handles):  # a new operation
            host.refill(step.sockets, step.behaviour, step.rate)
        kind = EventKind.TERMINATE if step.source == "local" else EventKind.PREEMPT
        event = LifecycleEvent.create(instance=step.instance, kind=kind, not_after=T0 + step.deadline,
                                      source=step.source, ref=step.ref)
        self._platform.announce(step.instance, step.ref, event.not_after, step.source)
        self._open[step.ref] = event
        if step.during_io and not idle:
            self._armed.setdefault(step.instance, []).append((self._clock.true + ARMED_WAIT_S, event))
            return
        await self._submitting(event)()

    async def _manual(self, step: Step) -> None:
        drain = self._engine.get(step.instance)
        if step.action == "manual" and step.sockets and (drain is None or drain.finished):
            self._hosts[step.instance].refill(step.sockets, step.behaviour, None)
        await self._operator(step)()

    def _operator(self, step: Step) -> Delivery:
        async def deliver() -> None:
            event = self._engine.manual_event(step.instance, deadline_s=step.deadline or None, rate_per_s=step.rate,
                                              request_id=step.ref or None)
            submission = await self._taking(event, deliver)
            if submission is not None and submission.disposition is Disposition.STARTED and step.ref:
                assert submission.drain is not None
                self._requests[submission.drain.id] = f"request {step.ref}"
        return deliver

    async def _outage(self, step: Step) -> None:
        assert step.outage is not None
        o = step.outage
        self._hosts[step.instance].outages.append(Outage(T0 + o.start, T0 + o.end, o.op, o.kind))

    async def _crash_now(self, step: Step) -> None:
        self._life.alive = False
        await self._restart(Crash("killed between steps"))

    async def _clock_step(self, step: Step) -> None:
        self._clock.step(step.offset)

    async def _leader(self, step: Step) -> None:
        """Lost: another replica takes over on the same journal while this one waits, with what it had in
        memory. Won back: the other replica stops and this one leads again (issue 9, case 11)."""
        if step.offset < 0 and self._standby is None:
            self._standby = (self._life, self._journal, self._engine)
            await self._restart(Crash("leadership lost"), dead=False)
        elif step.offset > 0 and self._standby is not None:
            self._life.alive = False
            await _cancel_orphans()
            with contextlib.suppress(Exception):
                self._journal.close()
            self._life, self._journal, self._engine = self._standby
            self._standby = None
            self._engine.reload()  # what `Engine.run` does as the leader elector starts it again

    async def _stuck(self, step: Step) -> None:
        """Some of the sockets open now are ones the kernel cannot destroy (none appear on a host already
        drained: a second platform's earlier notice may have drained it before this operation's first notice)."""
        host = self._hosts[step.instance]
        host.stuck = min(step.sockets, host.remaining())

    # --- intake --------------------------------------------------------------------------------------------

    def _submitting(self, event: LifecycleEvent) -> Delivery:
        async def deliver() -> None:
            await self._taking(event, deliver)
        return deliver

    async def _taking(self, event: LifecycleEvent, again: Delivery) -> Submission | None:
        """Submit `event`; on an intake failure (or a crash) it is delivered again at the next step."""
        try:
            submission = self._engine.submit(event)
        except Crash as crash:
            self._redeliver.append(again)
            await self._restart(crash)
            return None
        except DrainctlError as exc:
            self._note(f"  intake of {event.instance} {event.ref} failed: {exc}")
            self._redeliver.append(again)
            return None
        self._taken(event, submission)
        return submission

    def _taken(self, event: LifecycleEvent, submission: Submission) -> None:
        drain = submission.drain
        self._note(f"  {event.instance} {event.ref or event.kind}: {submission.disposition}"
                   + (f" (drain {drain.id}, {drain.phase}, refs {list(drain.handles())})" if drain else ""))
        if submission.disposition in (Disposition.STARTED, Disposition.MERGED):
            joined = drain is not None and event.ref is not None and drain.holds_handle(event.source, event.ref)
            self._accepted.append((event, joined))

    async def _flush(self) -> None:
        for _ in range(20):
            if not self._redeliver:
                return
            pending, self._redeliver = self._redeliver, []
            for delivery in pending:
                await delivery()

    def _during_call(self, instance: str) -> None:
        """An agent call of `instance` is in flight: deliver what was armed to arrive meanwhile (case 1)."""
        events = self._armed.pop(instance, [])
        for _, event in events:
            self._note(f"  {instance} {event.ref}: delivered while an agent call is in flight")
            try:
                submission = self._engine.submit(event)
            except Crash:
                self._redeliver.append(self._submitting(event))
                raise
            except DrainctlError as exc:
                self._note(f"  intake of {instance} {event.ref} failed: {exc}")
                self._redeliver.append(self._submitting(event))
                continue
            self._taken(event, submission)

    # --- controller lives ----------------------------------------------------------------------------------

    def _build(self) -> Engine:
        life = self._life
        views = {name: HostView(host, life, self._episode(name), self._call_hook(name))
                 for name, host in self._hosts.items()}
        releasers: dict[str, Releaser] = {
            source: ReleaserView(self._platform, self._hosts, life, self._check_release, self._epoch, source=source,
                                 op="release" if source == "local" else f"release {source}")
            for source in ("local", SECOND)
        }
        return Engine(
            store=self._journal, hosts=HostsView(views), verifier=Verifier(FakeGauge()), releasers=releasers,
            inventory={name: POOL for name in self._hosts}, slots=lambda pool: self.result.scenario.slots,
            budget=TEST_BUDGET, settings=SETTINGS, clock=self._clock,
        )

    def _episode(self, instance: str) -> Callable[[], int]:
        def episode() -> int:
            drain = self._engine.get(instance)
            return drain.id if drain is not None else 0
        return episode

    def _call_hook(self, instance: str) -> Callable[[], None]:
        return lambda: self._during_call(instance)

    async def _restart(self, crash: Crash, *, dead: bool = True) -> None:
        """The controller died (or, `dead=False`, stands by without the leadership): cancel what it had in
        flight, build a new one on the same journal file."""
        self._crashes += 1
        self._note(f"  CRASH: {crash}; restarting on the same journal")
        if dead:
            self._life.alive = False
            await _cancel_orphans()
            with contextlib.suppress(Exception):
                self._journal.close()
        elif self._standby is not None:  # nothing of the standby runs while it does not lead
            await _cancel_orphans()
        self._life = Life(self._crashes)
        self._journal = FaultyJournal(self._path, self._faults, self._life)
        self._engine = self._build()
        self._check_nothing_lost()
        for event in self._open.values():
            if not self._platform.handles[event.ref or ""].releases:
                self._redeliver.append(self._submitting(event))

    def _epoch(self) -> int:
        return self._crashes + len(self._faults.fired)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._journal.close()
        if self._standby is not None:
            with contextlib.suppress(Exception):
                self._standby[1].close()

    # --- invariants ----------------------------------------------------------------------------------------

    def _check_release(self, drain: Drain, handles: tuple[str, ...], source: str) -> None:
        host = self._hosts[drain.instance]
        self._note(f"  release {drain.instance} {source} refs {list(handles)} (drain {drain.id}, {drain.phase}, "
                   f"kernel count {host.last_count}, reset since {host.reset_since_count}, "
                   f"open {host.remaining()})")
        for problem in invariants.at_release(drain, handles, host, self._platform.handles, wall=self._clock.now(),
                                             epoch=self._epoch(), source=source):
            self._violate(problem)

    def _check(self) -> None:
        problems = invariants.unreleased(self._platform.handles.values(), self._clock.true)
        drains = [d for name in self._hosts if (d := self._engine.get(name)) is not None]
        problems += invariants.budget(drains, slots=self.result.scenario.slots, rules=TEST_BUDGET)
        for name, host in self._hosts.items():
            problems += invariants.drain_requests(host, name, self._requests)
        for problem in problems:
            self._violate(problem)

    def _check_nothing_lost(self) -> None:
        for event, joined in self._accepted:
            if not self._journal.seen(event.id):
                self._violate(f"nothing lost: event {event.instance} {event.ref or event.kind} not in the journal")
            refs = {ref for d in self._journal.drains(instance=event.instance, limit=1000) for ref in d.handles()}
            if joined and event.ref not in refs:
                self._violate(f"nothing lost: handle {event.ref} of {event.instance} is in no journaled episode")

    def _violate(self, problem: str) -> None:
        invariant, _, detail = problem.partition(": ")
        if any(v.invariant == invariant and v.detail == detail for v in self.result.violations):
            return
        violation = Violation(invariant, self._clock.true - T0, detail)
        self.result.violations.append(violation)
        self._note(violation.describe())

    def _note(self, line: str) -> None:
        self.result.trace.append(f"[+{self._clock.true - T0:7.2f}] {line}")

    def dump_journal(self) -> None:
        for line in self._journal.transitions(limit=10_000):
            self._note(f"  journal #{line.seq} drain {line.drain_id} {line.instance} t=+{line.at - T0:.2f} "
                       f"{line.previous}->{line.phase} {line.step}" + (f" ({line.detail})" if line.detail else ""))


async def _cancel_orphans() -> None:
    """Cancel every task of the dead controller (passes it had in flight) and wait for them to end."""
    current = asyncio.current_task()
    orphans = [task for task in asyncio.all_tasks() if task is not current]
    for task in orphans:
        task.cancel()
    await asyncio.gather(*orphans, return_exceptions=True)
