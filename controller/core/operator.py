"""Operator intents: an operator's `drainctl drain` / `drainctl reset` as lifecycle events (source `manual`).

No platform is involved: the deadline is the operator's (`--deadline`), the pace may be overridden (`--rate`),
and there is nothing to release. A client may pass a request id so that a retried request is a duplicate: the
event id then comes from the instance, the kind and the request id alone (not from the time of the request, which
differs on every retry).
"""

from __future__ import annotations

import dataclasses
import hashlib

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
    event = LifecycleEvent.create(
        instance=instance,
        kind=EventKind.MANUAL,
        not_after=now + deadline_s,
        source=SOURCE,
        ref=request_id,
        rate_per_s=rate_per_s,
        drain_deadline_s=deadline_s,
    )
    return _identified(event, request_id)


def reset_event(instance: str, *, now: float, request_id: str | None = None) -> LifecycleEvent:
    """Reset `instance`'s sockets now, without a graceful drain (used when it is not already draining)."""
    event = LifecycleEvent.create(
        instance=instance, kind=EventKind.RESET, not_after=now, source=SOURCE, ref=request_id, drain_deadline_s=0.0
    )
    return _identified(event, request_id)


def request_event_id(instance: str, kind: EventKind, request_id: str) -> str:
    """The id of an operator's request: the same for every retry of it, whenever it is sent."""
    text = "|".join((SOURCE, instance, kind, "request", request_id))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _identified(event: LifecycleEvent, request_id: str | None) -> LifecycleEvent:
    """`event`, its id taken from the request id when the client gave one."""
    if request_id is None:
        return event
    return dataclasses.replace(event, id=request_event_id(event.instance, event.kind, request_id))
