"""The per-instance state machine: each reconcile pass reads an episode and takes its next step.

Level-triggered: a pass looks at the episode as the journal has it (plus the latest socket count) and does
whatever comes next; it returns when it wants to be called again. Every step is journaled before it is
acted on, so a pass interrupted anywhere (kill -9) is resumed by the next controller from the journal:

- `pending`: wait for a disruption-budget slot (earliest deadline first; the deadline overrides the budget),
  then journal "drain requested" and send the drain request, once. Whatever its result, go on to verifying.
  With an out-of-rotation step (`rotating.Rotation`), the host turns not ready first and the drain request
  goes out once the load balancer stopped routing to it (journaled "out of rotation"); the timers and the
  no-progress window start after it.
- `draining` found on resume: the request may have been sent; it is never sent again -> verifying.
- `verifying`: count sockets (`verifying`). Zero -> drained (graceful). No new lowest count for
  `no_progress_window_s` (stretched to the drain's rate, measured on the monotonic clock) since the drain request
  (`core/stall.py`, the rule the agent's fallback follows too),
  or the drain deadline -> forcing. A slow but moving drain runs to its deadline.
- `forcing`: reset what is left; retried on temporary errors until the release deadline; then the kernel counts
  again: zero -> drained (forced); sockets left are reset again until the release deadline.
- `drained`: release the platform (idempotent, retried until the platform's deadline) -> released.
- `failed`: held until the release deadline (the host's own fallback may still act), then released all the same.
- `cancelled` (an operator's `drainctl cancel`, before any reset): nothing more is done to the host; a platform's
  notice is held until the release deadline like a failed one, then released (never early, never forever).

After each journal write the reconciler announces it (`announcing.Announcer`): listeners hear about a step only
once it is durable, and no listener is awaited inside a decide-and-write step.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from controller.core import logs
from controller.core.announcements import Journaled, Taken
from controller.core.budget import Budget
from controller.core.clocks import Clock
from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.models import Disposition, Drain, EventKind, LifecycleEvent, Outcome, Phase, Ref, Transition
from controller.core.ports import (
    HostActions,
    Hosts,
    HostUnreachable,
    Journal,
    NothingToRelease,
    Releaser,
    after_the_fact_of,
)
from controller.core.settings import EngineConfig
from controller.core.stall import Progress
from controller.engine import releasing, triaging
from controller.engine.announcing import Announcer
from controller.engine.budgeting import admit
from controller.engine.episodes import Episodes
from controller.engine.rotating import Rotation
from controller.engine.scheduling import backoff_s, must_start_by, plan
from controller.engine.verifying import Observation, Verifier

log = logging.getLogger("drainctl.engine")

NOTHING_TO_RELEASE = NothingToRelease()


class CancelRefused(PermanentError):
    """Nothing to cancel, or too late: the drain's reset has begun (`drainctl cancel`)."""


@dataclass(frozen=True)
class Submission:
    """What the controller did with an event, and the episode it concerns (None when there is none)."""

    disposition: Disposition
    drain: Drain | None


@dataclass
class Watch:
    """In-memory view of one draining instance (not journaled: a resumed drain gets a fresh window)."""

    progress: Progress
    """The no-progress rule's state, from the drain request on (`core/stall.py`)."""
    last: Observation | None = None
    last_at: float | None = None

    def see(self, observation: Observation, now: float, monotonic: float) -> None:
        """Take one look, taken at wall time `now` (shown) and `monotonic` (the no-progress window's time)."""
        self.last, self.last_at = observation, now
        counter = "kernel" if observation.kernel is not None else "prometheus"
        self.progress.see(observation.count, monotonic, counter=counter)


class Reconciler:
    """Holds the latest episode of every instance and takes each one's next step."""

    def __init__(
        self,
        *,
        store: Journal,
        hosts: Hosts,
        verifier: Verifier,
        releasers: Mapping[str, Releaser],
        budget: Budget,
        settings: EngineConfig,
        clock: Clock,
        announcer: Announcer,
        slots: Callable[[str], int],
        rotation: Rotation | None = None,
    ) -> None:
        """`rotation`: the out-of-rotation step before each drain request (None: drain at once)."""
        self._rotation = rotation
        self._store = store
        self._hosts = hosts
        self._verifier = verifier
        self._releasers = releasers
        self._budget = budget
        self._settings = settings
        self._clock = clock
        self._announcer = announcer
        self._slots = slots
        self.drains = Episodes()
        """The latest episode of each instance (the only one that may be unfinished), the open ones by pool."""
        self.watches: dict[str, Watch] = {}
        self._attempts: dict[str, int] = {}
        self._errors: dict[str, DrainctlError] = {}
        self._waiting: dict[str, str] = {}
        self._drained_by: dict[str, Drain] = {}
        """A new episode's host that its previous episode drained (`triaging.drained_before`): counted first. In
        memory only: a resumed episode takes the usual path."""
        self._handlers: Mapping[Phase, Callable[[Drain], Awaitable[float | None]]] = {
            Phase.PENDING: self._pending,
            Phase.DRAINING: self._draining,
            Phase.VERIFYING: self._verifying,
            Phase.FORCING: self._forcing,
            Phase.DRAINED: self._drained,
            Phase.FAILED: self._failed,
            Phase.CANCELLED: self._failed,
        }

    def forget(self) -> None:
        """Drop everything held in memory (episodes, watches, retries): the journal is read again (`Engine.run`)."""
        for held in (self.drains, self.watches, self._attempts, self._errors, self._waiting, self._drained_by):
            held.clear()

    def restore(self, episodes: Mapping[str, Drain | None]) -> None:
        """Put episodes back as they were (a batch of events whose commit failed: none of it was written)."""
        for instance, drain in episodes.items():
            self._drained_by.pop(instance, None)  # noted for an episode the failed commit did not write
            if drain is None:
                self.drains.pop(instance, None)
            else:
                self.drains[instance] = drain

    # --- intake --------------------------------------------------------------------------------------------

    def accept(self, event: LifecycleEvent, pool: str) -> Submission:
        """Dedupe, merge into the running episode, drop as stale, or start a new episode (`triaging`)."""
        verdict = self.triage(event, pool)
        current = verdict.current
        if verdict.disposition is Disposition.DUPLICATE:
            return self._taken(event, Submission(Disposition.DUPLICATE, current))
        if verdict.disposition is Disposition.MERGED:
            assert current is not None
            return self._taken(event, Submission(Disposition.MERGED, self._merge(current, event)))
        if verdict.disposition is Disposition.STALE:
            assert current is not None
            return self._taken(event, Submission(Disposition.STALE, self._stale(current, event)))
        assert verdict.draft is not None
        drain = self._start(verdict.draft, event)
        self._drained_by.pop(drain.instance, None)
        if current is not None and triaging.drained_before(current, drain, now=self._clock.now(),
                                                           window_s=self._budget.platform_notice_s):
            self._drained_by[drain.instance] = current
        return self._taken(event, Submission(Disposition.STARTED, drain))

    def triage(self, event: LifecycleEvent, pool: str) -> triaging.Verdict:
        """What `accept` would do with `event` now; reads the journal, writes nothing (`Engine.dry_run` too)."""
        return triaging.triage(
            event, current=self.drains.get(event.instance), seen=self._store.seen(event.id), pool=pool,
            holds=self.releaser(event.source).holds, budget=self._budget, now=self._clock.now(),
        )

    def _start(self, draft: Drain, event: LifecycleEvent) -> Drain:
        now = draft.created_at
        detail = f"{event.kind} from {event.source}; platform deadline in {event.not_after - now:.1f} s"
        drain = self._store.create(draft, event=event, at=now, step="event accepted", detail=detail)
        self.drains[drain.instance] = drain
        self._announce_line(None, drain)
        log.info("%s: %s (drain %d)", drain.instance, detail, drain.id)
        return drain

    async def _drained_before(self, drain: Drain, previous: Drain, host: HostActions) -> float | None:
        """`triaging.drained_before`: count first, with no slot of the budget. At zero the episode is drained with
        no drain request and released in its next pass. Nothing answering at the host's agent (connection
        refused: most likely its shutdown went on once the previous episode let it go) is drained too: the
        release is tried, and retried until its deadline, from drained, which holds no slot, where the usual path
        would hold the pool's slot retrying a drain and resets of a host that is gone (found in the box: 4.5 min
        of the pool's one slot after each MIG deletion whose shutdown notice was drained before the source's
        poll). None: sockets, or another error: the usual path (the budget, the drain request)."""
        now = self._clock.now()
        drained = f"drain {previous.id} drained the host {now - previous.updated_at:.1f} s ago ({previous.outcome})"
        try:
            count = await host.connections()
        except HostUnreachable as exc:
            detail = (f"{drained} and let it go; its agent does not answer now ({exc}): no drain of a host let go; "
                      f"{drain.source}'s handle is released, retried until its deadline")
            verified: dict[str, Any] = {"verified_by": f"drain {previous.id}"}
        except DrainctlError as exc:
            log.info("%s: %s, but it cannot be counted now (%s): draining again", drain.instance, drained, exc)
            return None
        else:
            if count:
                log.info("%s: %s, but it has %d sockets now: draining again", drain.instance, drained, count)
                return None
            detail = f"{drained} and it is still at zero: no drain request; {drain.source}'s handle is released"
            verified = {"verified_by": "kernel", "sockets_last": 0}
        timers = plan(start=now, not_after=drain.not_after, drain_deadline_s=drain.drain_deadline_s,
                      budget=self._budget, holds=drain.needs_release)
        log.info("%s: %s (drain %d)", drain.instance, detail, drain.id)
        self._move(drain, "drained before", detail=detail, phase=Phase.DRAINED, outcome=previous.outcome,
                   force_at=now, release_by=timers.release_by, **verified)
        return now

    def _stale(self, current: Drain, event: LifecycleEvent) -> Drain:
        self._store.log_event(event, at=self._clock.now(), disposition=Disposition.STALE, drain_id=current.id)
        log.info("%s: event %s is older than drain %d, which already ran; ignored", event.instance, event.id,
                 current.id)
        return current

    def releaser(self, source: str) -> Releaser:
        return self._releasers.get(source, NOTHING_TO_RELEASE)

    def _merge(self, current: Drain, event: LifecycleEvent) -> Drain:
        changes: dict[str, Any] = self._hold_for(current, event)
        joined = dataclasses.replace(current, **changes)
        # A platform taking over an operator's episode: its deadline replaces the operator's (case 3).
        if event.not_after < joined.not_after or "needs_release" in changes:
            changes["not_after"] = event.not_after
            if joined.drain_requested_at is not None and joined.force_at is not None and joined.release_by:
                tighter = plan(start=joined.drain_requested_at, not_after=event.not_after,
                               drain_deadline_s=joined.drain_deadline_s, budget=self._budget,
                               holds=joined.needs_release)
                changes["force_at"] = min(joined.force_at, tighter.force_at)
                changes["release_by"] = min(joined.release_by, tighter.release_by)
        if self._keeps_handle(joined, event):
            assert event.ref is not None
            changes["refs"] = releasing.joined(joined.refs, event.source, event.ref, event.not_after)
        detail = f"{event.kind} from {event.source} joins drain {current.id}"
        if "needs_release" in changes:
            detail += f"; {event.source} now waits for its release"
        return self._move(current, "event merged", detail=detail, event=event, **changes)

    def _keeps_handle(self, joined: Drain, event: LifecycleEvent) -> bool:
        """Whether the episode takes the event's handle (or an earlier deadline for one it holds): any platform's
        that waits for a release, the episode's own or another's (an agent's notice joining a GCP preemption:
        each is released by its own releaser, its retries bounded by its own deadline)."""
        if not event.ref or not joined.needs_release or event.kind in triaging.OPERATOR_KINDS:
            return False
        if any(ref.handle == event.ref and ref.source != event.source for ref in joined.refs):
            return False  # an echo of a handle the episode holds from another source (`triaging._stale`)
        return self.releaser(event.source).holds and joined.refs != releasing.joined(
            joined.refs, event.source, event.ref, event.not_after)

    def _hold_for(self, current: Drain, event: LifecycleEvent) -> dict[str, Any]:
        """A platform's event joining an operator's episode (nothing to release) makes the episode hold for that
        platform: released through its releaser, with its handles. Changes nothing for any other merge."""
        if current.needs_release or event.kind in triaging.OPERATOR_KINDS or not self.releaser(event.source).holds:
            return {}
        return {"needs_release": True, "source": event.source, "refs": ()}

    def _taken(self, event: LifecycleEvent, submission: Submission) -> Submission:
        self._announcer.announce(Taken(event, submission.disposition, submission.drain))
        return submission

    # --- passes --------------------------------------------------------------------------------------------

    async def step(self, instance: str) -> float | None:
        """One pass for `instance`: its next step. Returns when to pass again (None: nothing left to do)."""
        drain = self.drains.get(instance)
        if drain is None or drain.finished:
            return None
        with logs.bound(drain_id=drain.id, instance=instance):  # on every line of the pass, the agent's too
            return await self._pass(instance, drain)

    async def _pass(self, instance: str, drain: Drain) -> float | None:
        try:
            return await self._handlers[drain.phase](drain)
        except PermanentError as exc:
            current = self.drains[instance]
            if current.phase is Phase.FAILED:
                raise
            self._errors[instance] = exc
            return self._fail(current, str(exc))
        except TemporaryError as exc:  # e.g. a journal write: retried, not later than the release deadline,
            current = self.drains[instance]  # and past it without a growing backoff (the platform's is near)
            now, deadline = self._clock.now(), current.release_by
            cap = deadline if deadline is None or deadline > now else now + self._settings.retry_initial_s
            return self._retry_at(current, exc, cap=cap)

    async def _pending(self, drain: Drain) -> float | None:
        now = self._clock.now()
        if drain.kind is EventKind.RESET:
            self._move(drain, "reset requested by operator", phase=Phase.FORCING, reason="operator reset",
                       force_at=now, release_by=now + self._budget.verify_s)
            return now
        previous = self._drained_by.pop(drain.instance, None)
        if previous is not None and (due := await self._drained_before(drain, previous, self._hosts.host(
                drain.instance))) is not None:
            return due
        start_by = must_start_by(not_after=drain.not_after, budget=self._budget, holds=drain.needs_release)
        verdict = admit(drain, self.drains.open_in(drain.pool), slots=self._slots(drain.pool), now=now,
                        must_start_by=start_by)
        if not verdict.start:
            if self._waiting.get(drain.instance) != verdict.why:
                log.info("%s: %s", drain.instance, verdict.why)
            self._waiting[drain.instance] = verdict.why
            return start_by
        self._waiting.pop(drain.instance, None)
        host = self._hosts.host(drain.instance)
        timers = plan(start=now, not_after=drain.not_after, drain_deadline_s=drain.drain_deadline_s,
                      budget=self._budget, holds=drain.needs_release)
        detail = (
            f"{verdict.why}; rate {drain.rate_per_s:g}/s; reset at +{timers.force_at - now:.1f} s, "
            f"release by +{timers.release_by - now:.1f} s"
        )
        drain = self._move(drain, "drain requested", detail=detail, phase=Phase.DRAINING, drain_requested_at=now,
                           force_at=timers.force_at, release_by=timers.release_by)
        if self._rotation is not None:
            drain = await self._out_of_rotation(drain, host)
        self.watches[drain.instance] = self._watch(drain)
        try:
            await host.drain(drain.rate_per_s)
        except DrainctlError as exc:
            self._errors[drain.instance] = exc
            self._move(drain, "drain request failed", detail=f"{exc}; not re-sent, counting sockets",
                       phase=Phase.VERIFYING, last_error=str(exc))
        else:
            self._move(drain, "drain accepted", phase=Phase.VERIFYING)
        return self._clock.now()

    async def _out_of_rotation(self, drain: Drain, host: HostActions) -> Drain:
        """The first step (`rotating`): journaled, and the drain's timers start again after it."""
        assert self._rotation is not None
        rotated = await self._rotation.take_out(drain.instance, host)
        now = self._clock.now()
        timers = plan(start=now, not_after=drain.not_after, drain_deadline_s=drain.drain_deadline_s,
                      budget=self._budget, holds=drain.needs_release)
        return self._move(drain, f"out of rotation ({rotated.how})", detail=rotated.detail,
                          force_at=timers.force_at, release_by=timers.release_by)

    async def _draining(self, drain: Drain) -> float | None:
        self.watches[drain.instance] = self._watch(drain)
        self._move(drain, "resumed", detail="the drain request may have been sent: not sending it again",
                   phase=Phase.VERIFYING)
        return self._clock.now()

    async def _verifying(self, drain: Drain) -> float | None:
        force_at, release_by = drain.force_at, drain.release_by
        assert force_at is not None and release_by is not None
        if self._clock.now() >= release_by:
            return self._fail(drain, f"not verified at zero by the release deadline ({self._last_words(drain)})")
        watch = self.watches.setdefault(drain.instance, self._watch(drain))
        seen = await self._verifier.observe(drain.instance, self._hosts.host(drain.instance))
        now = self._clock.now()
        monotonic = self._clock.monotonic()
        watch.see(seen, now, monotonic)
        if seen.disagreement:
            log.debug("%s: counts disagree (%s); the kernel count decides", drain.instance, seen.describe())
        if seen.zero_by:
            self._move(drain, "verified zero", detail=seen.describe(), phase=Phase.DRAINED, outcome=Outcome.GRACEFUL,
                       verified_by=seen.zero_by, sockets_last=0)
            return now
        if drain.sockets_before is None and seen.count is not None:
            drain = self._move(drain, "first count", detail=seen.describe(), sockets_before=seen.count,
                               sockets_last=seen.count)
        window_s = watch.progress.window
        left = seen.count if seen.count is not None else "an unknown number of"
        if now >= force_at:
            return self._force(drain, f"drain deadline reached with {left} sockets left", seen)
        if watch.progress.stalled(monotonic):
            return self._force(drain, f"no progress for {window_s:g} s at {left} sockets", seen)
        return min(now + self._settings.poll_interval_s, force_at)

    def _force(self, drain: Drain, reason: str, seen: Observation) -> float:
        log.warning("%s: forcing: %s", drain.instance, reason)
        self._move(drain, "reset requested", detail=seen.describe(), phase=Phase.FORCING, reason=reason,
                   sockets_last=seen.count)
        return self._clock.now()

    async def _forcing(self, drain: Drain) -> float | None:
        if drain.release_by is not None and self._clock.now() >= drain.release_by:
            return self._fail(drain, f"could not reset before the release deadline ({self._last_words(drain)})")
        host = self._hosts.host(drain.instance)
        try:
            reset = await host.reset()
        except TemporaryError as exc:
            return self._retry_at(drain, exc, cap=drain.release_by)
        self._errors.pop(drain.instance, None)
        drain = self._move(drain, "reset done", detail=f"{reset} sockets reset",
                           sockets_reset=drain.sockets_reset + reset)
        return await self._recount(drain, host)

    async def _recount(self, drain: Drain, host: HostActions) -> float:
        """After a reset, the kernel counts again (`ss -K` may skip a socket and exit 0): zero -> drained (forced);
        sockets left, or no kernel count, -> reset again after a backoff, until the release deadline."""
        seen = await self._verifier.observe(drain.instance, host)
        now = self._clock.now()
        self.watches.setdefault(drain.instance, self._watch(drain)).see(seen, now, self._clock.monotonic())
        if seen.kernel == 0:
            self._move(drain, "verified zero after reset", detail=seen.describe(), phase=Phase.DRAINED,
                       outcome=Outcome.FORCED, verified_by="kernel", sockets_last=0)
            return now
        if seen.kernel is not None and seen.kernel != drain.sockets_last:  # journaled when the count changes
            log.warning("%s: %d sockets left after the reset; resetting again", drain.instance, seen.kernel)
            self._move(drain, "sockets left after reset", detail=seen.describe(), sockets_last=seen.kernel)
        attempt = self._attempts[drain.instance] = self._attempts.get(drain.instance, 0) + 1
        delay_s = backoff_s(attempt, initial_s=self._settings.retry_initial_s, max_s=self._settings.retry_max_s)
        assert drain.release_by is not None
        return min(now + delay_s, drain.release_by)

    async def _drained(self, drain: Drain) -> float | None:
        if not drain.needs_release:
            self._move(drain, "done", detail="nothing to release", phase=Phase.RELEASED)
            return None
        return await self._release(drain)

    async def _failed(self, drain: Drain) -> float | None:
        if drain.release_by is not None and self._clock.now() < drain.release_by:
            return drain.release_by  # never release early: the host's own fallback may still drain it
        return await self._release(drain)

    async def _release(self, drain: Drain) -> float | None:
        """Release every handle not settled yet, source by source (`releasing`): each source's result is
        journaled before the next one's call, so a restart repeats no release the journal says is done."""
        if drain.release_requested_at is None:
            drain = self._move(drain, "release requested", detail=releasing.listed(drain) or None,
                               release_requested_at=self._clock.now())
        left = drain.unreleased()
        if not drain.refs:  # a platform that holds with no handle of its own (or nothing to release): told once
            left = {drain.source: ()}
        elif not left:  # every handle settled but the episode's last step not journaled: never left hanging
            self._conclude(drain, drain.refs, None)
            return None
        retry_at: float | None = None
        for source, handles in left.items():
            at = await self._release_source(drain.instance, source, handles)
            if at is not None:
                retry_at = at if retry_at is None else min(retry_at, at)
        tried = {(ref.source, ref.handle) for ref in drain.refs}
        joined = [r for r in self.drains[drain.instance].refs if not r.settled and (r.source, r.handle) not in tried]
        if joined:  # merged while a release call was out: released in the next pass (releases are idempotent)
            log.info("%s: %s joined while releasing; releasing again", drain.instance,
                     ", ".join(ref.describe() for ref in joined))
            return self._clock.now()
        return retry_at

    async def _release_source(self, instance: str, source: str, handles: tuple[str, ...]) -> float | None:
        """Release `source`'s `handles`; when to try them again after a temporary failure (None: settled)."""
        drain = self.drains[instance]
        try:
            await self.releaser(source).release(drain, handles)
        except DrainctlError as exc:
            self._errors[instance] = exc
            own = drain.deadline_of(source, handles)  # this platform's own: it may be later than the episode's
            if isinstance(exc, TemporaryError) and self._clock.now() < own:
                key = f"{instance} release {source}"
                return self._retry_at(drain, exc, cap=self._release_retry_cap(drain, own), key=key)
            self._settled(instance, source, handles, exc)
            return None
        self._settled(instance, source, handles, None)
        return None

    def _settled(self, instance: str, source: str, handles: tuple[str, ...], exc: DrainctlError | None) -> None:
        """Journal what became of `source`'s release: with the episode's last step when nothing else is left."""
        self._attempts.pop(f"{instance} release {source}", None)
        current = self.drains[instance]
        refs = releasing.settle(current.refs, source, handles, at=self._clock.now(),
                                error=str(exc) if exc is not None else None)
        if any(not ref.settled for ref in refs):
            if exc is not None:
                log.error("%s: release of %s not confirmed: %s; that platform proceeds at its own deadline",
                          instance, source, exc)
            done = "release given up" if exc is not None else "released"
            detail = ", ".join(handles) + (f": {exc}" if exc is not None else "")
            self._move(current, f"{done} ({source})", detail=detail or None, refs=refs)
            return
        self._conclude(current, refs, exc)

    def _conclude(self, drain: Drain, refs: tuple[Ref, ...], exc: DrainctlError | None) -> None:
        """Every handle is settled: the episode is released, or its release given up if a platform's was."""
        why = releasing.given_up(refs) if refs else (str(exc) if exc is not None else None)
        if why is not None:
            self._give_up_release(drain, why, exc, refs=refs)
        else:
            self._finish_release(drain, refs)

    def _finish_release(self, drain: Drain, refs: tuple[Ref, ...]) -> None:
        now = self._clock.now()
        if drain.phase is Phase.DRAINED:
            self._move(drain, "released", phase=Phase.RELEASED, released_at=now, refs=refs)
        elif drain.phase is Phase.CANCELLED:
            self._move(drain, "released", detail="at its deadline, after the cancel", released_at=now, refs=refs)
        else:
            self._move(drain, "released", detail=f"after failing: {drain.reason}", released_at=now, refs=refs)

    def _give_up_release(self, drain: Drain, error: str, exc: DrainctlError | None, *, refs: tuple[Ref, ...]) -> None:
        """A platform refused, or its deadline passed: it proceeds on its own; say so and stop trying."""
        why = f"release not confirmed: {error}"
        log.error("%s: %s; the platform proceeds at its own deadline", drain.instance, why)
        if drain.phase is Phase.FAILED:
            self._move(drain, "release given up", detail=why, release_error=error, refs=refs)
        else:
            self._move(drain, "release given up", detail=why, phase=Phase.FAILED, reason=why, release_error=error,
                       refs=refs, cause=_cause(exc))

    # --- operator reset ------------------------------------------------------------------------------------

    def force_now(self, instance: str) -> Drain | None:
        """Move a running episode to forcing at once (`drainctl reset`); None when none is running."""
        drain = self.drains.get(instance)
        if drain is None or drain.finished or drain.phase not in (Phase.PENDING, Phase.DRAINING, Phase.VERIFYING):
            return drain if drain is not None and not drain.finished else None
        now = self._clock.now()
        release_by = drain.release_by
        if release_by is None:
            release_by = plan(start=now, not_after=drain.not_after, drain_deadline_s=0.0, budget=self._budget,
                              holds=drain.needs_release).release_by
        return self._move(drain, "reset requested by operator", phase=Phase.FORCING, reason="operator reset",
                          force_at=now, release_by=release_by)

    async def reset_again(self, drain: Drain) -> Drain:
        """An operator's reset of an instance already drained (or failed) but not yet released."""
        drain = self._move(drain, "reset requested by operator")
        reset = await self._hosts.host(drain.instance).reset()
        total = drain.sockets_reset + reset
        return self._move(drain, "reset done", detail=f"{reset} sockets reset", sockets_reset=total)

    # --- operator cancel -----------------------------------------------------------------------------------

    def cancel(self, instance: str, *, why: str) -> Drain:
        """Cancel the running episode before any reset (`drainctl cancel`); `CancelRefused` once a reset began.

        A platform's notice is not released early: it is held until the release deadline (as a failed episode
        is), then released; an operator's drain has nothing to release and is finished at once."""
        drain = self.drains.get(instance)
        if drain is None or drain.finished:
            last = f" (its last drain, {drain.id}, is {drain.phase})" if drain is not None else ""
            raise CancelRefused(f"{instance} has no running drain to cancel{last}")
        if drain.phase is Phase.CANCELLED:
            raise CancelRefused(f"drain {drain.id} of {instance} is already cancelled (released at its deadline)")
        if drain.phase not in (Phase.PENDING, Phase.DRAINING, Phase.VERIFYING) or drain.sockets_reset:
            raise CancelRefused(f"drain {drain.id} of {instance} is {drain.phase}: too late to cancel, its reset "
                                "has begun (a reset cannot be undone)")
        release_by = drain.release_by
        if drain.needs_release and release_by is None:
            release_by = plan(start=self._clock.now(), not_after=drain.not_after, drain_deadline_s=0.0,
                              budget=self._budget, holds=True).release_by
        held = "; the platform's notice is left to its deadline" if drain.needs_release else ""
        for held_state in (self.watches, self._attempts, self._errors, self._waiting):
            held_state.pop(instance, None)
        return self._move(drain, "cancelled by operator", detail=why + held, phase=Phase.CANCELLED,
                          outcome=Outcome.CANCELLED, reason="cancelled by operator", release_by=release_by)

    def trouble(self, instance: str) -> tuple[str | None, int]:
        """What fails right now for a running episode (not journaled), and how many retries it has had."""
        drain, watch = self.drains.get(instance), self.watches.get(instance)
        if drain is None or drain.finished:
            return None, 0
        seen = watch.last if watch is not None else None
        if drain.phase is Phase.VERIFYING and seen is not None:
            counting = f"counting: {seen.kernel_error}" if seen.kernel is None and seen.kernel_error else None
            return counting, 0
        error = self._errors.get(instance)
        retries = [n for key, n in self._attempts.items() if key == instance or key.startswith(f"{instance} release ")]
        return (str(error) if error is not None else None), max(retries, default=0)

    # --- bookkeeping ---------------------------------------------------------------------------------------

    def _fail(self, drain: Drain, reason: str) -> float:
        error = self._errors.get(drain.instance)
        log.error("%s: drain %d failed: %s", drain.instance, drain.id, reason)
        self._move(drain, "failed", detail=reason, phase=Phase.FAILED, outcome=Outcome.FAILED, reason=reason,
                   last_error=str(error) if error else drain.last_error, cause=_cause(error))
        return self._clock.now()

    def _release_retry_cap(self, drain: Drain, own: float) -> float:
        """The latest a failed release is tried again: by the release deadline while it is ahead (then by `own`,
        this platform's deadline, less the margin, where it is later than the episode's), then at the shortest
        backoff until `own`. Waiting for a full backoff up to the platform's deadline itself would spend the
        margin the budget keeps for a wall clock that is off (found by the soak: seeds 30187 and 32841, a clock
        1.45 s behind and an agent unreachable at the first release)."""
        now = self._clock.now()
        for by in (drain.release_by, own - self._budget.margin_s):
            if by is not None and now < by:
                return by
        return min(now + self._settings.retry_initial_s, own)

    def _retry_at(
        self, drain: Drain, exc: TemporaryError, *, cap: float | None = None, key: str | None = None
    ) -> float:
        """When to try again; `key`: what the retries count under (a source's release has its own count)."""
        key = key or drain.instance
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        previous = self._errors.get(drain.instance)
        self._errors[drain.instance] = exc
        delay_s = backoff_s(attempt, initial_s=self._settings.retry_initial_s, max_s=self._settings.retry_max_s,
                            hint_s=exc.delay_s)
        level = logging.WARNING if attempt == 1 or str(previous) != str(exc) else logging.DEBUG
        log.log(level, "%s: %s: %s (retry %d in %.1f s)", drain.instance, drain.phase, exc, attempt, delay_s)
        at = self._clock.now() + delay_s
        return min(at, cap) if cap is not None else at

    def _last_words(self, drain: Drain) -> str:
        error = self._errors.get(drain.instance)
        watch = self.watches.get(drain.instance)
        if error is not None:
            return f"last error: {error}"
        if watch is not None and watch.last is not None:
            return f"last count: {watch.last.describe()}"
        return "no count"

    def _watch(self, drain: Drain) -> Watch:
        """A fresh no-progress window from now (on the monotonic clock), stretched to the drain's rate."""
        progress = Progress(window_s=self._budget.no_progress_window_s, since=self._clock.monotonic(),
                            rate_per_s=drain.rate_per_s)
        return Watch(progress)

    def _move(
        self,
        drain: Drain,
        step: str,
        *,
        detail: str | None = None,
        event: LifecycleEvent | None = None,
        cause: str | None = None,
        **changes: Any,
    ) -> Drain:
        """Journal a step (durably), make it the episode's current state, then announce it.

        `cause`: when the step fails the drain, what made it fail (a metric label, see `_cause`).
        A pass's copy read before an `await` may be older than the episode (an event merged meanwhile): the
        step is applied to the current episode instead (`_current`), so no merged deadline or ref is lost."""
        now = self._clock.now()
        drain, changes = self._current(drain, changes)
        after = dataclasses.replace(drain, updated_at=now, **changes)
        moved = after.phase is not drain.phase
        if moved:
            after = dataclasses.replace(after, phase_since=now)
        with after_the_fact_of(self._store) if step in RESULT_STEPS else nullcontext():
            self._store.record(drain, after, step=step, detail=detail, event=event,
                               disposition=Disposition.MERGED if event else None)
        self.drains[drain.instance] = after
        if moved:
            self._attempts.pop(drain.instance, None)
            log.info("%s: %s -> %s: %s%s", drain.instance, drain.phase, after.phase, step,
                     f" ({detail})" if detail else "")
        self._announce_line(drain, after, cause=cause)
        return after

    def _current(self, copy: Drain, changes: dict[str, Any]) -> tuple[Drain, dict[str, Any]]:
        """The episode a step computed from `copy` applies to: the current one, if only events changed it since
        (same episode, same phase). Timers the step sets never loosen the current ones (a merge tightened them).
        A copy in another phase is left as it is: the journal refuses it (a stale decision is not applied)."""
        current = self.drains.get(copy.instance)
        if current is None or current is copy or current.id != copy.id or current.phase is not copy.phase:
            return copy, changes
        tightened = dict(changes)
        for name in _TIMERS:
            now_value, new_value = getattr(current, name), tightened.get(name)
            if name in tightened and now_value is not None and new_value is not None:
                tightened[name] = min(now_value, new_value)
        return current, tightened

    def _announce_line(self, before: Drain | None, after: Drain, *, cause: str | None = None) -> None:
        """Announce the journal line just written for `after` (never raises: the step is done either way)."""
        if not self._announcer.listeners:
            return
        try:
            line = self._line_written(after)
        except DrainctlError as exc:
            log.warning("%s: journal line of drain %d not announced: %s", after.instance, after.id, exc)
            return
        self._announcer.announce(Journaled(line, before, after, cause))

    def _line_written(self, drain: Drain) -> Transition:
        """The journal's latest line, read back for its `seq`: writes are synchronous and only this engine
        writes, so it is the one just written (checked; else the episode's own lines are read)."""
        latest = self._store.transitions(limit=1)
        if latest and latest[-1].drain_id == drain.id:
            return latest[-1]
        return self._store.transitions(drain_id=drain.id, limit=1_000_000)[-1]


RESULT_STEPS = frozenset({
    "drain accepted", "drain request failed", "first count", "verified zero", "reset done",
    "verified zero after reset", "sockets left after reset", "released", "done", "release requested",
})
"""Steps a resumed pass finds again safely if a power loss took them: what already happened (a count, an answer,
a release), and "release requested", whose act is idempotent (a resumed drained episode releases again). They
are journaled after the fact; every other intent (above all "drain requested": a drain request is never sent
twice) is on disk before it is acted on."""

_TIMERS = ("not_after", "force_at", "release_by")
"""The episode's deadlines: an event merged into it may only tighten them."""


def _cause(error: DrainctlError | None) -> str:
    """A metric label from an error's type: AgentUnreachable -> agent_unreachable; no error -> deadline."""
    if error is None:
        return "deadline"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()
