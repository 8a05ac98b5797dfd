"""The JSON the API answers with: drains, instance statuses, dry runs and journal lines.

These shapes are a contract (the on-call CLI, the end-to-end scenarios and scripts read them). Times are unix
seconds on the controller's clock; `*_in_s` fields count from the response's `now`, so a reader needs no
clock of its own.

    drain:   every field of `models.Drain` (phase, outcome, reason, force_at, release_by, sockets_*, ...)
             plus "active" and "finished"; "refs" is the list of platform handles (strings, of every source),
             "handles" the same with their source, own deadline and release: [{"source", "handle",
             "not_after", "released_at", "release_error"}] (an episode can hold handles of two platforms)
    status:  {"instance", "pool", "phase" (a drain phase, or "idle" if never drained), "drain_id", "source",
              "kind", "outcome", "reason", "finished", "sockets_remaining", "sockets_kernel",
              "sockets_prometheus", "observed_at", "rate_per_s", "drain_deadline_at", "drain_deadline_in_s",
              "not_after", "not_after_in_s", "now", "error", "retries", "drain": drain | null}
             ("error": what fails right now in a running drain, e.g. an agent unreachable; "retries": how
             often that step was retried)
    dry run: {"instance", "disposition", "would_start_now", "why", "rate_per_s", "drain_deadline_s",
              "not_after", "force_at", "force_in_s", "release_by", "release_in_s", "now"}
    journal line: {"seq", "drain_id", "instance", "at", "previous", "phase", "step", "detail"}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from controller.core.models import Drain, LifecycleEvent, Transition
from controller.engine import DryRun, InstanceStatus, Submission

IDLE = "idle"
"""The phase shown for an instance that was never drained."""


def drain_json(drain: Drain) -> dict[str, Any]:
    body = dataclasses.asdict(drain)
    body.update(
        kind=drain.kind.value,
        phase=drain.phase.value,
        outcome=drain.outcome.value if drain.outcome else None,
        refs=list(drain.handles()),
        handles=[dataclasses.asdict(ref) for ref in drain.refs],
        active=drain.active,
        finished=drain.finished,
    )
    return body


def submission_json(submission: Submission) -> dict[str, Any]:
    drain = submission.drain
    return {"disposition": submission.disposition.value, "drain": drain_json(drain) if drain else None}


def status_json(status: InstanceStatus, *, now: float) -> dict[str, Any]:
    drain, seen = status.drain, status.observation
    running = drain is not None and not drain.finished
    remaining = seen.count if seen is not None else (drain.sockets_last if drain else None)
    return {
        "instance": status.instance,
        "pool": status.pool,
        "phase": drain.phase.value if drain else IDLE,
        "drain_id": drain.id if drain else None,
        "source": drain.source if drain else None,
        "kind": drain.kind.value if drain else None,
        "outcome": drain.outcome.value if drain and drain.outcome else None,
        "reason": drain.reason if drain else None,
        "finished": drain.finished if drain else True,
        "sockets_remaining": remaining,
        "sockets_kernel": seen.kernel if seen else None,
        "sockets_prometheus": seen.prometheus if seen else None,
        "observed_at": status.observed_at,
        "rate_per_s": drain.rate_per_s if drain else None,
        "drain_deadline_at": drain.force_at if drain else None,
        "drain_deadline_in_s": _until(drain.force_at, now) if running and drain else None,
        "not_after": drain.not_after if drain else None,
        "not_after_in_s": _until(drain.not_after, now) if running and drain else None,
        "now": now,
        "error": status.error,
        "retries": status.retries,
        "drain": drain_json(drain) if drain else None,
    }


def dry_run_json(event: LifecycleEvent, verdict: DryRun, *, now: float) -> dict[str, Any]:
    timers = verdict.plan
    return {
        "instance": event.instance,
        "disposition": verdict.disposition.value,
        "would_start_now": verdict.would_start_now,
        "why": verdict.why,
        "rate_per_s": verdict.rate_per_s,
        "drain_deadline_s": event.drain_deadline_s,
        "not_after": event.not_after,
        "force_at": timers.force_at if timers else None,
        "force_in_s": _until(timers.force_at, now) if timers else None,
        "release_by": timers.release_by if timers else None,
        "release_in_s": _until(timers.release_by, now) if timers else None,
        "now": now,
    }


def transition_json(line: Transition) -> dict[str, Any]:
    body = dataclasses.asdict(line)
    body.update(phase=line.phase.value, previous=line.previous.value if line.previous else None)
    return body


def _until(at: float | None, now: float) -> float | None:
    return None if at is None else round(at - now, 3)
