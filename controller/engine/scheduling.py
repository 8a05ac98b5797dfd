"""When to force, when to release at the latest, and when a waiting drain must start anyway.

A drain's timers come from the budget (DESIGN.md §3): graceful drain for `drain_deadline_s` (D), then reset;
verify within `verify_s`; release leaving `margin_s` before the platform's deadline (`not_after`), because the
budget guarantees D + verify_s + margin_s < the platform's notice.

When the time actually left is shorter than that (a 30 s preemption notice, a drain that waited for a slot), the
margin is the last part to shrink: it keeps `margin_s` while that is at most half the time left, and the drain
and the verification share the rest in proportion, so there is always some graceful drain, a reset, and a
release before the deadline. Why the margin last: it is what absorbs a release that fails once and a wall clock
that is off (the deadline is a wall-clock instant); shrunk in proportion with the rest, a drain that started at
`must_start_by` kept a third of it, and the 100,000-seed soak found releases after the platform's deadline
(seeds 42824, 42939: a clock 1.2-1.5 s behind; 53769, 58978: an agent unreachable over the last 1.7 s).
Manual drains have no platform: the operator's deadline is when what is left gets reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.budget import Budget
from controller.core.retrying import backoff_s as _backoff_s


@dataclass(frozen=True)
class Plan:
    force_at: float
    """Reset whatever the graceful drain left at this time."""
    release_by: float
    """Release (or give up and release) at the latest at this time."""


def plan(*, start: float, not_after: float, drain_deadline_s: float, budget: Budget, holds: bool) -> Plan:
    """The timers of a drain that starts at `start`."""
    if not holds:
        force_at = max(start, min(start + drain_deadline_s, not_after))
        return Plan(force_at=force_at, release_by=force_at + budget.verify_s)
    left = max(0.0, not_after - start)
    margin = release_margin_s(left, drain_deadline_s=drain_deadline_s, budget=budget)
    work = drain_deadline_s + budget.verify_s
    scale = min(1.0, (left - margin) / work) if work > 0 else 0.0
    return Plan(force_at=start + drain_deadline_s * scale, release_by=not_after - margin)


def release_margin_s(left_s: float, *, drain_deadline_s: float, budget: Budget) -> float:
    """The margin kept before the platform's deadline when `left_s` remain: the budget's when everything fits,
    else at least half of what is left (never more than the budget's). Continuous in `left_s`."""
    work = drain_deadline_s + budget.verify_s
    return max(0.0, min(budget.margin_s, max(left_s / 2, left_s - work)))


def must_start_by(*, not_after: float, budget: Budget, holds: bool) -> float:
    """A drain waiting for a disruption-budget slot starts anyway at this time: the deadline wins."""
    if not holds:
        return not_after
    return not_after - (budget.verify_s + budget.margin_s)


def backoff_s(attempt: int, *, initial_s: float, max_s: float, hint_s: float | None = None) -> float:
    """Delay before retry `attempt` (1, 2, ...) after a temporary error: doubling, capped, at least the hint
    (the one backoff: controller/core/retrying.py)."""
    return _backoff_s(attempt, initial_s=initial_s, max_s=max_s, hint_s=hint_s)
