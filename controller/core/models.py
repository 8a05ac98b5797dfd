"""The controller's data shapes: lifecycle events, drain episodes, their phases and journal entries.

This is the contract of DESIGN.md §4 shared by sources (which emit `LifecycleEvent`s), the reconciler (which
moves a `Drain` through its `Phase`s), the journal (which stores both) and the API (which shows them).
Plain frozen dataclasses, no I/O: the infra programs may import this module.

The state machine of one drain episode (docs/architecture.md has the full story):

    pending ──> draining ──> verifying ──────────────> drained ──> released
       │                         │ no progress,          ^
       │                         v drain deadline        │
       └── operator reset ──> forcing ── reset done ─────┘
    any phase ──> failed (reason): held until the release deadline, then released all the same
    pending, draining, verifying ──> cancelled (operator, before any reset): like failed, held until then
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass


class Phase(enum.StrEnum):
    PENDING = "pending"
    """Event accepted; waiting for a slot in the pool's disruption budget."""
    DRAINING = "draining"
    """The drain request is journaled and being sent. Never re-sent: on resume this goes on to verifying."""
    VERIFYING = "verifying"
    """Counting sockets (kernel count, Prometheus) until zero, no progress, or the drain deadline."""
    FORCING = "forcing"
    """Resetting what is left with TCP RSTs (kernel socket destroy on the host)."""
    DRAINED = "drained"
    """Verified zero or a completed force: the platform may be released."""
    RELEASED = "released"
    """The platform was told to proceed (or there was nothing to release). Terminal."""
    FAILED = "failed"
    """Something could not be done; `reason` says what. Released at the release deadline all the same."""
    CANCELLED = "cancelled"
    """An operator cancelled it before any reset (`drainctl cancel`): nothing more is done to the host; a
    platform's notice is left to its deadline (released at the release deadline, like a failed one)."""


ACTIVE_PHASES = frozenset({Phase.DRAINING, Phase.VERIFYING, Phase.FORCING})
"""Phases that occupy a slot of the pool's disruption budget."""

ALLOWED_TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.DRAINING, Phase.FORCING, Phase.DRAINED, Phase.FAILED, Phase.CANCELLED}),
    Phase.DRAINING: frozenset({Phase.VERIFYING, Phase.FORCING, Phase.FAILED, Phase.CANCELLED}),
    Phase.VERIFYING: frozenset({Phase.DRAINED, Phase.FORCING, Phase.FAILED, Phase.CANCELLED}),
    Phase.FORCING: frozenset({Phase.DRAINED, Phase.FAILED}),
    Phase.DRAINED: frozenset({Phase.RELEASED, Phase.FAILED}),
    Phase.RELEASED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset({Phase.FAILED}),
}
"""Phase changes the journal accepts; a step that keeps the phase (an observation, a release) is always allowed."""


class Outcome(enum.StrEnum):
    GRACEFUL = "graceful"
    """Every socket closed by the application's own drain; nothing reset."""
    FORCED = "forced"
    """What the drain left was reset with TCP RSTs."""
    FAILED = "failed"
    """Neither a verified zero nor a completed force."""
    CANCELLED = "cancelled"
    """An operator cancelled the drain before any reset; whatever the app had closed by then stays closed."""


class EventKind(enum.StrEnum):
    TERMINATE = "terminate"
    PREEMPT = "preempt"
    REBOOT = "reboot"
    REDEPLOY = "redeploy"
    STOP = "stop"
    MANUAL = "manual"
    """An operator's `drainctl drain`: no platform hold, nothing to release."""
    RESET = "reset"
    """An operator's `drainctl reset` of an instance that was not draining: reset at once, no drain."""


def event_id(*, source: str, instance: str, kind: str, not_after: float, ref: str | None) -> str:
    """A deterministic id: the same platform notice seen twice (or by two pollers) gets the same id."""
    text = "|".join((source, instance, kind, f"{not_after:.3f}", ref or ""))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class LifecycleEvent:
    """An instance is about to go away (or an operator asked to drain it). Sources emit these; they never act."""

    instance: str
    kind: EventKind
    not_after: float
    """Unix seconds: the platform deletes/stops the instance at this time (manual: the operator's deadline)."""
    source: str
    """Which source saw it: local, manual, gcp, azure, kubernetes."""
    id: str
    """Deterministic (see `event_id`); a duplicate id is ignored."""
    ref: str | None = None
    """The platform's own handle, needed to release it (Azure EventId, the local notice id)."""
    rate_per_s: float | None = None
    """Drain pace override (manual `--rate`); None: the budget's `drain_rate_per_s`."""
    drain_deadline_s: float | None = None
    """Graceful drain window override (manual `--deadline`); None: the budget's `drain_deadline_s`."""

    @classmethod
    def create(
        cls,
        *,
        instance: str,
        kind: EventKind,
        not_after: float,
        source: str,
        ref: str | None = None,
        rate_per_s: float | None = None,
        drain_deadline_s: float | None = None,
    ) -> LifecycleEvent:
        ident = event_id(source=source, instance=instance, kind=kind, not_after=not_after, ref=ref)
        return cls(instance, kind, not_after, source, ident, ref, rate_per_s, drain_deadline_s)


class Disposition(enum.StrEnum):
    """What the controller did with a submitted event."""

    STARTED = "started"
    """A new drain episode was created for it."""
    MERGED = "merged"
    """The instance was already being drained; the event joined that episode (its deadline may tighten it)."""
    DUPLICATE = "duplicate"
    """This event id was seen before."""
    STALE = "stale"
    """An older event for an instance whose later drain already ran: no second drain."""


@dataclass(frozen=True)
class Ref:
    """One platform handle an episode holds: which source's platform waits on it, and what became of its release.

    An episode can hold handles of several platforms (a GCP preemption notice and, for the same instance, an
    agent-pushed notice or a Kubernetes preStop hold): each is released through its own source's releaser, once.
    The release state is journaled with the handle, so a controller restarted between two platforms' releases
    releases only what the journal does not say is released (the one in flight at the crash again: idempotent)."""

    source: str
    """The source whose platform holds the instance by this handle (its releaser lets go of it)."""
    handle: str
    """The platform's own handle (Azure EventId, the local notice id, a pod uid)."""
    not_after: float | None = None
    """Unix seconds: this platform's own deadline for this handle (the earliest it announced). The episode's
    timers follow the earliest deadline of all its handles (`Drain.not_after`); this one bounds the retries of
    this platform's release, which may go on after another platform's earlier deadline. None: the episode's."""
    released_at: float | None = None
    """When the platform accepted this handle's release (None: not yet)."""
    release_error: str | None = None
    """Why this handle's release was given up (its platform refused, or the deadline passed)."""

    @property
    def settled(self) -> bool:
        """Nothing more to do for this handle: released, or its release given up."""
        return self.released_at is not None or self.release_error is not None

    def describe(self, *, source: str | None = None) -> str:
        """`handle`, or `source:handle` when it is not of `source` (the episode's own)."""
        return self.handle if self.source == source else f"{self.source}:{self.handle}"


@dataclass(frozen=True)
class Drain:
    """One drain episode of one instance: what the journal holds and the API shows."""

    id: int
    instance: str
    pool: str
    source: str
    kind: EventKind
    event_id: str
    not_after: float
    """Unix seconds; the earliest deadline of every event merged into this episode, whichever platform sent it.
    Every timer follows it, so each handle is released by the earliest, before its own (`Ref.not_after`)."""
    rate_per_s: float
    drain_deadline_s: float
    needs_release: bool
    """False when the source has no platform hold (manual, operator reset)."""
    refs: tuple[Ref, ...] = ()
    """Platform handles to release (one per merged event that carried one), each with its source."""
    phase: Phase = Phase.PENDING
    phase_since: float = 0.0
    reason: str | None = None
    """Why it was forced or why it failed, in words an on-call engineer can act on."""
    outcome: Outcome | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    drain_requested_at: float | None = None
    force_at: float | None = None
    """Reset what is left at this time (drain deadline, shrunk to fit a short notice)."""
    release_by: float | None = None
    """Release at the latest at this time, whatever happened (before `not_after`, leaving the margin)."""
    release_requested_at: float | None = None
    released_at: float | None = None
    release_error: str | None = None
    """Why the release was given up (the platform's deadline passed, or it refused); the platform proceeds alone."""
    sockets_before: int | None = None
    """First socket count observed after the drain request."""
    sockets_last: int | None = None
    sockets_reset: int = 0
    verified_by: str | None = None
    """Which count proved zero: kernel or prometheus."""
    last_error: str | None = None

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    def handles(self, source: str | None = None) -> tuple[str, ...]:
        """The handles of `source`'s platform (None: of every source), in the order they joined."""
        return tuple(ref.handle for ref in self.refs if source is None or ref.source == source)

    def holds_handle(self, source: str, handle: str) -> bool:
        """Whether this episode holds `handle` of `source`'s platform."""
        return any(ref.source == source and ref.handle == handle for ref in self.refs)

    def deadline_of(self, source: str, handles: tuple[str, ...]) -> float:
        """The earliest own deadline of `source`'s `handles` (the episode's where a handle has none)."""
        own = [ref.not_after if ref.not_after is not None else self.not_after for ref in self.refs
               if ref.source == source and ref.handle in handles]
        return min(own, default=self.not_after)

    def unreleased(self) -> dict[str, tuple[str, ...]]:
        """By source, in the order the sources joined: the handles whose release is still to be made."""
        left: dict[str, tuple[str, ...]] = {}
        for ref in self.refs:
            if not ref.settled:
                left[ref.source] = (*left.get(ref.source, ()), ref.handle)
        return left

    @property
    def finished(self) -> bool:
        """Nothing left to do: released, or failed and then released (or nothing to release, or given up)."""
        if self.phase is Phase.RELEASED:
            return True
        settled = self.released_at is not None or self.release_error is not None or not self.needs_release
        return self.phase in (Phase.FAILED, Phase.CANCELLED) and settled


@dataclass(frozen=True)
class Transition:
    """One journal line: a step of a drain episode, written before the step is acted on."""

    seq: int
    drain_id: int
    instance: str
    at: float
    previous: Phase | None
    """The phase before this step (None for the step that created the episode)."""
    phase: Phase
    step: str
    """What is about to be done or was observed: "drain requested", "reset requested", "release requested"..."""
    detail: str | None = None
