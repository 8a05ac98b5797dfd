"""The engine: sources in, reconcile passes out. The controller's public surface for the API and the CLI.

    engine = Engine(store=..., hosts=..., verifier=..., releasers=..., inventory={"A": "web"}, listeners=[...])
    engine.submit(event)                  # from a source or the API: Submission(disposition, drain)
    engine.drain("A", deadline_s=30)      # an operator's manual drain (the manual source)
    await engine.reset("A")               # an operator's force-reset
    engine.status(); engine.history(); engine.journal(drain_id)
    await engine.run(sources)             # the daemon: watch sources, reconcile until cancelled

One worker per instance at a time; instances are worked on concurrently. On construction, and again each time
`run()` starts (a replica that wins the leadership back), the engine resumes every unfinished episode found in
the journal. `run_due()` runs every pass that is due now and returns: the engine's tests drive it with a fake
clock instead of `run()`.

Listeners (`listeners=`: the metrics, later webhooks) hear every journaled transition and every event taken,
after the fact (`announcing`); the engine knows them only by the ports of the core, and the API finds the
metrics among `engine.listeners`. A synchronous listener is current when a pass returns; an async one is
delivered from its own task, so `run_due()` does not wait for it.

Intake: an event a source emitted is the engine's from then on (sources remember what they emitted and do not
emit it again). One the engine could not take because of a temporary error (the journal could not be written:
`JournalError`) is kept and taken again with backoff (`_retake`), never dropped; a permanent refusal (an unknown
instance) is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from controller.core import operator as manual_source
from controller.core.announcements import Resumed
from controller.core.budget import Budget
from controller.core.clocks import Clock, SystemClock
from controller.core.errors import DrainctlError, JournalError, PermanentError, TemporaryError
from controller.core.inventory import Inventory
from controller.core.models import Disposition, Drain, EventKind, LifecycleEvent, Phase, Transition
from controller.core.ports import AsyncListener, Hosts, Journal, Listener, Releaser, Source, batch_of
from controller.core.settings import EngineConfig
from controller.engine.announcing import Announcer
from controller.engine.budgeting import admit, earliest_deadline_first, waiting
from controller.engine.queueing import DueQueue
from controller.engine.reconciling import Reconciler, Submission
from controller.engine.rotating import Rotation
from controller.engine.scheduling import Plan, backoff_s, must_start_by, plan
from controller.engine.verifying import Observation, Verifier

log = logging.getLogger("drainctl.engine")

MAX_SLEEP_S = 1.0
"""The daemon's loop reads the wall clock at least this often while a pass is due: the due times are wall-clock
instants but the sleep is measured by the event loop's monotonic clock, so after a forward step of the wall clock
a pass is late by at most this (issue 9, case 8)."""


class UnknownInstance(PermanentError):
    """The instance is not in the controller's inventory."""


KNOWN_SHOWN = 8
"""An unknown instance's error lists the inventory up to this size, else the closest names (a fleet of 10,000
would make a 100 KB error line)."""


def _known(instance: str, inventory: Mapping[str, str]) -> str:
    if len(inventory) <= KNOWN_SHOWN:
        return f"known: {', '.join(sorted(inventory)) or 'none'}"
    closest = difflib.get_close_matches(instance, inventory, n=3, cutoff=0.5)
    return f"{len(inventory)} known" + (f"; closest: {', '.join(closest)}" if closest else "")


class ManualDisabled(PermanentError):
    """Manual drains are turned off in the controller's config (`sources.manual.enabled`)."""


@dataclass(frozen=True)
class InstanceStatus:
    instance: str
    pool: str
    drain: Drain | None
    """The latest episode, running or finished; None if the instance was never drained."""
    observation: Observation | None
    """The latest socket counts of a running drain (not journaled)."""
    observed_at: float | None
    error: str | None = None
    """What fails right now in the running drain (an agent unreachable, a reset retried); not journaled."""
    retries: int = 0
    """How often the failing step was retried so far."""


@dataclass(frozen=True)
class DryRun:
    """What `submit` would do with an event, without doing it."""

    disposition: Disposition
    would_start_now: bool
    why: str
    plan: Plan | None
    rate_per_s: float


@dataclass
class Held:
    """An event a source emitted that the engine could not take yet (a temporary error), and when to try again."""

    event: LifecycleEvent
    source: str
    attempt: int
    due: float


class Engine:
    def __init__(
        self,
        *,
        store: Journal,
        hosts: Hosts,
        verifier: Verifier,
        releasers: Mapping[str, Releaser],
        inventory: Mapping[str, str] | Inventory,
        slots: Callable[[str], int],
        budget: Budget,
        settings: EngineConfig,
        clock: Clock | None = None,
        listeners: Sequence[Listener | AsyncListener] = (),
        manual_enabled: bool = True,
        rotation: Rotation | None = None,
    ) -> None:
        """`inventory`: instance -> pool. `slots(pool)`: how many of the pool may drain at once."""
        self.clock = clock or SystemClock()
        self._announcer = Announcer(listeners)
        self.budget = budget
        self.inventory = inventory if isinstance(inventory, Inventory) else Inventory(inventory)
        self._store = store
        self._settings = settings
        self._slots = slots
        self._manual_enabled = manual_enabled
        self._reconciler = Reconciler(
            store=store, hosts=hosts, verifier=verifier, releasers=releasers, budget=budget, settings=settings,
            clock=self.clock, announcer=self._announcer, slots=slots, rotation=rotation,
        )
        self._queue = DueQueue(self.clock)
        self._busy: set[str] = set()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wakeup = asyncio.Event()
        self._held: dict[str, Held] = {}
        """By event id: events emitted by sources and not taken yet, retried with backoff (`_retake`)."""
        self._resume()

    # --- events in -----------------------------------------------------------------------------------------

    def submit(self, event: LifecycleEvent) -> Submission:
        """Take an event from a source; journaled before this returns. Unknown instance: `UnknownInstance`."""
        pool = self._pool(event.instance)
        submission = self._reconciler.accept(event, pool)
        if submission.disposition in (Disposition.STARTED, Disposition.MERGED):
            self._schedule(event.instance, self.clock.now())
        return submission

    def submit_all(self, events: Sequence[LifecycleEvent]) -> list[Submission | DrainctlError]:
        """Take several events in one journal commit (group commit: one fsync for the lot); for each, its
        submission or why it was not taken. Every submission returned is durable; nothing of the batch is
        announced, nor its passes scheduled, before the commit. A commit that fails took none of them: the
        episodes held in memory are put back as they were and each gets the `JournalError` (temporary)."""
        before = {event.instance: self._reconciler.drains.get(event.instance) for event in events}
        results: list[Submission | DrainctlError] = []
        try:
            with self._announcer.holding(), batch_of(self._store):
                for event in events:
                    results.append(self._accept_one(event))
        except JournalError as exc:
            log.error("journal: a batch of %d events was not committed (%s); none was taken", len(events), exc)
            self._reconciler.restore(before)
            return [JournalError(str(exc)) for _ in events]
        for result in results:
            if isinstance(result, Submission) and result.disposition in (Disposition.STARTED, Disposition.MERGED):
                assert result.drain is not None
                self._schedule(result.drain.instance, self.clock.now())
        return results

    def _accept_one(self, event: LifecycleEvent) -> Submission | DrainctlError:
        try:
            return self._reconciler.accept(event, self._pool(event.instance))
        except DrainctlError as exc:
            return exc

    def drain(
        self,
        instance: str,
        *,
        deadline_s: float | None = None,
        rate_per_s: float | None = None,
        request_id: str | None = None,
    ) -> Submission:
        """An operator's drain: gracefully for up to `deadline_s` (default: the budget's), then reset."""
        return self.submit(self.manual_event(instance, deadline_s=deadline_s, rate_per_s=rate_per_s,
                                             request_id=request_id))

    def manual_event(
        self,
        instance: str,
        *,
        deadline_s: float | None = None,
        rate_per_s: float | None = None,
        request_id: str | None = None,
    ) -> LifecycleEvent:
        if not self._manual_enabled:
            raise ManualDisabled("manual drains are disabled (sources.manual.enabled: false)")
        self._pool(instance)
        try:
            return manual_source.drain_event(
                instance, now=self.clock.now(), deadline_s=deadline_s or self.budget.drain_deadline_s,
                rate_per_s=rate_per_s, request_id=request_id,
            )
        except ValueError as exc:
            raise PermanentError(f"{instance}: {exc}") from exc

    def dry_run(self, event: LifecycleEvent) -> DryRun:
        """What `submit(event)` would do now, changing nothing (for `drainctl drain --dry-run`)."""
        verdict = self._reconciler.triage(event, self._pool(event.instance))
        rate = event.rate_per_s or self.budget.drain_rate_per_s
        current, draft = verdict.current, verdict.draft
        if verdict.disposition is Disposition.DUPLICATE:
            return DryRun(Disposition.DUPLICATE, False, "this event was already received", None, rate)
        if verdict.disposition is Disposition.MERGED:
            assert current is not None
            why = f"{event.instance} is already in drain {current.id} ({current.phase}); the event would join it"
            return DryRun(Disposition.MERGED, False, why, None, rate)
        if verdict.disposition is Disposition.STALE:
            assert current is not None
            return DryRun(Disposition.STALE, False, f"older than drain {current.id}, which already ran", None, rate)
        assert draft is not None
        return self._preview(draft)

    def _preview(self, draft: Drain) -> DryRun:
        """Whether a drafted episode would start now (the disruption budget), and its timers if it did."""
        now, holds = self.clock.now(), draft.needs_release
        start_by = must_start_by(not_after=draft.not_after, budget=self.budget, holds=holds)
        others = [*self._reconciler.drains.open_in(draft.pool), draft]
        verdict = admit(draft, others, slots=self._slots(draft.pool), now=now, must_start_by=start_by)
        timers = plan(start=now, not_after=draft.not_after, drain_deadline_s=draft.drain_deadline_s,
                      budget=self.budget, holds=holds)
        return DryRun(Disposition.STARTED, verdict.start, verdict.why, timers, draft.rate_per_s)

    async def cancel(self, instance: str, *, request_id: str | None = None) -> Drain:
        """An operator's cancel of the running drain, before any reset (`CancelRefused` after). A retry of the
        same request (`request_id`) answers the cancelled episode again."""
        self._pool(instance)
        why = f"request {request_id}" if request_id else "no request id"
        async with self._locks[instance]:
            latest = self._reconciler.drains.get(instance)
            if request_id and latest is not None and self._cancelled_by(latest, why):
                return latest
            drain = self._reconciler.cancel(instance, why=why)
            due = await self._reconciler.step(instance)
            self._after_step(instance, due)
            drain = self._reconciler.drains[instance]
        self._wakeup.set()
        return drain

    def _cancelled_by(self, drain: Drain, why: str) -> bool:
        lines = self.journal(drain.id)
        return any(line.step == "cancelled by operator" and (line.detail or "").startswith(why) for line in lines)

    def seen_request(self, instance: str, kind: EventKind, request_id: str) -> bool:
        """Whether an operator's request with this id was already taken (a client's retry)."""
        return self._store.seen(manual_source.request_event_id(instance, kind, request_id))

    async def reset(self, instance: str, *, request_id: str | None = None) -> Drain:
        """An operator's force-reset: the running drain is forced now, or a reset-only episode is started.

        Returns the episode after its reset pass (phase drained, or still forcing if the agent must be retried).
        """
        self._pool(instance)
        async with self._locks[instance]:
            running = self._reconciler.force_now(instance)
            if running is not None and running.phase in (Phase.DRAINED, Phase.FAILED, Phase.CANCELLED):
                return await self._reconciler.reset_again(running)
            if running is None:
                self.submit(manual_source.reset_event(instance, now=self.clock.now(), request_id=request_id))
            for _ in range(3):  # pending -> forcing -> drained -> released, while each step is due at once
                due = await self._reconciler.step(instance)
                self._after_step(instance, due)
                if due is None or due > self.clock.now():
                    break
            drain = self._reconciler.drains[instance]
        self._wakeup.set()
        return drain

    # --- reading -------------------------------------------------------------------------------------------

    @property
    def listeners(self) -> tuple[Listener | AsyncListener, ...]:
        """The listeners the engine was given, in order."""
        return self._announcer.listeners

    def get(self, instance: str) -> Drain | None:
        return self._reconciler.drains.get(instance)

    def start_by(self, drain: Drain) -> float | None:
        """The wall-clock instant by which this episode's plan requests its drain, whatever the disruption budget
        says (`scheduling.must_start_by`); None once it has finished. What the push route tells an agent, whose
        fallback then keeps out of a drain the controller holds back for the budget."""
        if drain.finished:
            return None
        return must_start_by(not_after=drain.not_after, budget=self.budget, holds=drain.needs_release)

    def status(self) -> list[InstanceStatus]:
        """Every inventory instance (and any instance with a journaled drain), with its latest episode."""
        names = sorted({*self.inventory, *self._reconciler.drains})
        result = []
        for name in names:
            drain = self._reconciler.drains.get(name)
            watch = self._reconciler.watches.get(name) if drain is not None and not drain.finished else None
            pool = self.inventory.get(name) or (drain.pool if drain else "")
            error, retries = self._reconciler.trouble(name)
            result.append(InstanceStatus(name, pool, drain, watch.last if watch else None,
                                         watch.last_at if watch else None, error, retries))
        return result

    def history(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        """Episodes, most recent first."""
        return self._store.drains(instance=instance, limit=limit)

    def journal(self, drain_id: int | None = None, *, limit: int = 1000) -> list[Transition]:
        """Journal lines of one episode, or the most recent ones."""
        return self._store.transitions(drain_id=drain_id, limit=limit)

    # --- running -------------------------------------------------------------------------------------------

    async def run(self, sources: Sequence[Source] = ()) -> None:
        """Watch every source and reconcile until cancelled.

        Each run starts from what the journal says now, not from what this engine held when it last ran: a
        replica that lost the leadership and wins it back resumes the episodes as the other leader left them."""
        self._reload()
        try:
            async with asyncio.TaskGroup() as tasks:
                for source in sources:
                    tasks.create_task(self._watch(source), name=f"source-{source.name}")
                while True:
                    self._retake()
                    for key in self._in_deadline_order(self._queue.pop_due(self.clock.now(), busy=self._busy)):
                        self._busy.add(key)
                        tasks.create_task(self._work(key), name=f"reconcile-{key}")
                    due = self.next_due()
                    self._wakeup.clear()
                    timeout = None if due is None else min(MAX_SLEEP_S, max(0.0, due - self.clock.now()))
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                    # races with the timeout, and the daemon would not stop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wakeup.wait()
        finally:
            self._requeue_cancelled()

    async def run_due(self) -> None:
        """Run every pass due now (and those they make due now), then return. For tests and benchmarks."""
        for _ in range(10_000):
            self._retake()
            keys = self._in_deadline_order(self._queue.pop_due(self.clock.now(), busy=self._busy))
            if not keys:
                return
            self._busy.update(keys)
            await asyncio.gather(*(self._work(key) for key in keys))
        raise RuntimeError("engine: passes keep becoming due at the same instant")

    def reload(self, *, reads: bool = False) -> None:
        """What `run()` does as it starts: forget the episodes and passes held in memory and resume from the
        journal (a replica that wins the leadership back; a standby's reads, since the leader writes the shared
        journal). For drivers of `run_due()`: tests, the simulation. `reads`: only to answer a read (a standby's
        API): the episodes it finds are logged at debug, since it resumes none of them (each read would log them:
        the box's polling of a standby wrote the line every 30 ms)."""
        self._reload(reads=reads)

    def next_due(self) -> float | None:
        """When a pass, or another try of a held event, is due next (None: nothing is)."""
        dues = [self._queue.next_at(busy=self._busy), *(held.due for held in self._held.values())]
        return min((due for due in dues if due is not None), default=None)

    async def aclose(self) -> None:
        """Stop the async listeners' delivery tasks (what they had not delivered yet is dropped)."""
        await self._announcer.aclose()

    def _requeue_cancelled(self) -> None:
        """Passes cancelled with `run()` before they started are due again at once (the journal says where each
        episode is); else their instances stayed busy and were never worked on again (issue 9, case 11)."""
        now = self.clock.now()
        for key in self._busy:
            self._queue.schedule(key, now)
        self._busy.clear()

    async def _work(self, key: str) -> None:
        due: float | None
        try:
            async with self._locks[key]:
                due = await self._reconciler.step(key)
        except asyncio.CancelledError:
            self._queue.schedule(key, self.clock.now())  # cancelled midway: due again at once (level-triggered)
            raise
        except Exception:
            log.exception("%s: reconcile pass failed; trying again in %.1f s", key, self._settings.retry_max_s)
            due = self.clock.now() + self._settings.retry_max_s
        finally:
            self._busy.discard(key)
        self._after_step(key, due)
        self._wakeup.set()

    def _after_step(self, key: str, due: float | None) -> None:
        if due is not None:
            self._queue.schedule(key, due)
        drain = self._reconciler.drains.get(key)
        if drain is not None and not drain.active and drain.phase is not Phase.PENDING:
            self._wake_pool(drain.pool)

    def _wake_pool(self, pool: str) -> None:
        """A slot may have freed: as many of the pool's waiting drains as there are free slots take another
        look now, earliest deadline first. The others keep their pass at their must-start-by time; waking
        every waiting drain at each release made a storm quadratic (each pass sorts the pool's queue)."""
        open_now = list(self._reconciler.drains.open_in(pool))
        free = self._slots(pool) - sum(1 for d in open_now if d.active)
        now = self.clock.now()
        for other in waiting(open_now)[:max(0, free)]:
            if other.instance not in self._busy:
                self._queue.schedule(other.instance, now)

    def _in_deadline_order(self, keys: list[str]) -> list[str]:
        """Passes due together, the waiting drains among them earliest deadline first (so their "drain
        requested" lines are journaled in deadline order too); the others first, as they came."""
        drains = self._reconciler.drains
        pending = {key: drain for key in keys
                   if (drain := drains.get(key)) is not None and drain.phase is Phase.PENDING}
        rest = [key for key in keys if key not in pending]
        return rest + sorted(pending, key=lambda key: earliest_deadline_first(pending[key]))

    async def _watch(self, source: Source) -> None:
        while True:
            try:
                async for event in source.watch():
                    self._take(source, event)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("source %s failed; watching again in %.1f s", source.name, self._settings.retry_max_s)
            await asyncio.sleep(self._settings.retry_max_s)

    def _take(self, source: Source, event: LifecycleEvent) -> None:
        self._offer(source.name, event, attempt=1)

    def _offer(self, source: str, event: LifecycleEvent, *, attempt: int) -> None:
        """Submit a source's event; on a temporary error keep it, to be offered again after a backoff."""
        try:
            self.submit(event)
        except TemporaryError as exc:
            delay_s = backoff_s(attempt, initial_s=self._settings.retry_initial_s, max_s=self._settings.retry_max_s,
                                hint_s=exc.delay_s)
            level = logging.WARNING if attempt == 1 else logging.DEBUG
            log.log(level, "source %s: event for %s not taken yet: %s (retry %d in %.1f s)", source, event.instance,
                    exc, attempt, delay_s)
            self._held[event.id] = Held(event, source, attempt, self.clock.now() + delay_s)
            self._wakeup.set()
        except DrainctlError as exc:
            log.error("source %s: event for %s not taken: %s", source, event.instance, exc)

    def _retake(self) -> None:
        """Offer again every held event that is due."""
        now = self.clock.now()
        for held in [held for held in self._held.values() if held.due <= now]:
            del self._held[held.event.id]
            self._offer(held.source, held.event, attempt=held.attempt + 1)

    def _schedule(self, key: str, at: float) -> None:
        self._queue.schedule(key, at)
        self._wakeup.set()

    def _pool(self, instance: str) -> str:
        try:
            return self.inventory[instance]
        except KeyError:
            raise UnknownInstance(f"unknown instance {instance!r} ({_known(instance, self.inventory)})") from None

    def _reload(self, *, reads: bool = False) -> None:
        """Forget the episodes and passes held in memory and resume from the journal."""
        self._reconciler.forget()
        self._queue = DueQueue(self.clock)
        self._resume(reads=reads)

    def _resume(self, *, reads: bool = False) -> None:
        for name in self.inventory:
            latest = self._store.latest(name)
            if latest is not None:
                self._reconciler.drains[name] = latest
        unfinished = self._store.unfinished()
        now = self.clock.now()
        for drain in unfinished:
            self._reconciler.drains[drain.instance] = drain
            self._queue.schedule(drain.instance, now)
        self._announcer.announce(Resumed(tuple(self._reconciler.drains.values())))
        if unfinished:
            log.log(logging.DEBUG if reads else logging.INFO, "journal: resuming %d unfinished drains: %s",
                    len(unfinished),
                     ", ".join(f"{d.instance} ({d.phase})" for d in unfinished))
