"""Operator intents: an operator's `drainctl drain` / `drainctl reset` as lifecycle events (source `manual`).

No platform is involved: the deadline is the operator's (`--deadline`), the pace may be overridden (`--rate`),
and there is nothing to release. A client may pass a request id so that a retried request is a duplicate.
"""

from __future__ import annotations

from controller.core.models import EventKind, LifecycleEvent

SOURCE = "manual"


def drain_event(
    instance: str, *, now: float, deadline_s: float, rate_per_s: float | None = None, request_id: str | None = None
) -> LifecycleEvent:
    """Drain `instance` gracefully for up to `deadline_s`, then reset what is left."""
    if not deadline_s > 0:
        raise ValueError(f"deadline_s must be positive, got {deadline_s!r}")
    if rate_per_s is not None and not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be positive, got {rate_per_s!r}")
    return LifecycleEvent.create(
        instance=instance,
        kind=EventKind.MANUAL,
        not_after=now + deadline_s,
        source=SOURCE,
        ref=request_id,
        rate_per_s=rate_per_s,
        drain_deadline_s=deadline_s,
    )


def reset_event(instance: str, *, now: float, request_id: str | None = None) -> LifecycleEvent:
    """Reset `instance`'s sockets now, without a graceful drain (used when it is not already draining)."""
    return LifecycleEvent.create(
        instance=instance, kind=EventKind.RESET, not_after=now, source=SOURCE, ref=request_id, drain_deadline_s=0.0
    )
