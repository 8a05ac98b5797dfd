"""What to do with an event: the one decision that `submit` acts on and `dry_run` only reports.

Pure: it reads the instance's latest episode and whether the journal saw the event id, and writes nothing.

- duplicate: the event id was seen before;
- merged: the instance's latest episode is still running; the event joins it (its deadline may tighten it);
- stale: the latest episode already ran and the event's deadline is no later than that episode's, so the event
  is a late copy of an old notice (whose handle, if it has one, that episode released). An operator's drain or
  reset is a new intent, never stale; nor is a platform's event after an operator's episode, nor one with a
  handle of its own (that platform still waits for a release: a new episode drains and releases), unless the
  episode released that very handle (an echo of it from another source);
- started: a new episode, drafted here (id 0 until the journal gives it one).
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.budget import Budget
from controller.core.models import Disposition, Drain, EventKind, LifecycleEvent, Outcome, Phase, Ref

OPERATOR_KINDS = frozenset({EventKind.MANUAL, EventKind.RESET})
"""Events an operator caused: no platform holds the instance, and they are never stale."""


@dataclass(frozen=True)
class Verdict:
    disposition: Disposition
    current: Drain | None
    """The instance's latest episode before the event, which a merged or stale event is judged against."""
    draft: Drain | None = None
    """Started: the new episode, not journaled yet."""


def triage(
    event: LifecycleEvent,
    *,
    current: Drain | None,
    seen: bool,
    pool: str,
    holds: bool,
    budget: Budget,
    now: float,
) -> Verdict:
    """`seen`: the journal has the event id. `holds`: the event's platform waits for a release."""
    if seen:
        return Verdict(Disposition.DUPLICATE, current)
    if current is not None and not current.finished:
        return Verdict(Disposition.MERGED, current)
    if current is not None and _stale(event, current, holds=holds):
        return Verdict(Disposition.STALE, current)
    return Verdict(Disposition.STARTED, current, draft(event, pool=pool, holds=holds, budget=budget, now=now))


def _stale(event: LifecycleEvent, finished: Drain, *, holds: bool) -> bool:
    """A platform's late copy of a notice whose episode already ran (one a platform held, not only an operator).

    Not stale: a notice with a handle of its own that the episode did not release (an older notice delivered
    late, with its own ref): its platform waits for that handle until its deadline, so a new episode drains
    (the host is likely at zero already) and releases it.

    Stale whatever its source: a notice whose handle the episode released. GCP's release records the MIG's event
    on the instance's agent as a notice with the event's handle for its id, and releases it; the agent pushed that
    notice back (source local), and it started a third episode for one deletion (found in the box)."""
    if event.ref is not None and any(ref.handle == event.ref and ref.released_at is not None for ref in finished.refs):
        return event.kind not in OPERATOR_KINDS  # its handle was released: an echo (see below), whatever reports it
    held = finished.kind not in OPERATOR_KINDS or finished.needs_release
    own_handle = holds and event.ref is not None and not finished.holds_handle(event.source, event.ref)
    return event.kind not in OPERATOR_KINDS and held and not own_handle and event.not_after <= finished.not_after


def drained_before(previous: Drain, started: Drain, *, now: float, window_s: float) -> bool:
    """Whether a new episode's host may be drained already for the same going-away: its latest episode before it
    held for a platform (the host was released to go), ended drained (verified zero, or a completed reset) and
    released, at most `window_s` (one platform notice) ago, and the new one holds a platform handle of its own.
    Then the host is counted first (no slot of the disruption budget): at zero there is nothing to drain and the
    episode goes straight to releasing its handle. Found in the box: a MIG deletion is two notices, the agent's
    shutdown hold (pushed the moment the guest's shutdown began) and the MIG's DELETING (seen by the GCP
    source's next poll, with the MIG's own handle); when the first episode had drained and released the host
    before the poll, the second one asked the host, already at zero, to drain again."""
    if previous.phase is not Phase.RELEASED or not previous.needs_release:
        return False
    if previous.outcome not in (Outcome.GRACEFUL, Outcome.FORCED) or not started.needs_release:
        return False
    return started.kind not in OPERATOR_KINDS and now - previous.updated_at <= window_s


def draft(event: LifecycleEvent, *, pool: str, holds: bool, budget: Budget, now: float) -> Drain:
    """The episode an event starts: the event's overrides, else the budget's rate and drain deadline."""
    held = holds and event.kind not in OPERATOR_KINDS
    return Drain(
        id=0,
        instance=event.instance,
        pool=pool,
        source=event.source,
        kind=event.kind,
        event_id=event.id,
        not_after=event.not_after,
        rate_per_s=event.rate_per_s or budget.drain_rate_per_s,
        drain_deadline_s=event.drain_deadline_s if event.drain_deadline_s is not None else budget.drain_deadline_s,
        needs_release=held,
        refs=(Ref(event.source, event.ref, event.not_after),) if held and event.ref else (),
        phase_since=now,
        created_at=now,
        updated_at=now,
    )
