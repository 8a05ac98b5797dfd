"""When to force, when to release at the latest, and when a waiting drain must start anyway.

A drain's timers come from the budget (DESIGN.md §3): graceful drain for `drain_deadline_s` (D), then reset;
verify within `verify_s`; release leaving `margin_s` before the platform's deadline (`not_after`), because the
budget guarantees D + verify_s + margin_s < the platform's notice.

When the time actually left is shorter than that (a 30 s preemption notice, a drain that waited for a slot),
every part shrinks in proportion, so there is always some graceful drain, a reset, and a release before the
deadline. Manual drains have no platform: the operator's deadline is when what is left gets reset.
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
    scale = shrink(start=start, not_after=not_after, drain_deadline_s=drain_deadline_s, budget=budget)
    return Plan(force_at=start + drain_deadline_s * scale, release_by=not_after - budget.margin_s * scale)


def shrink(*, start: float, not_after: float, drain_deadline_s: float, budget: Budget) -> float:
    """1 when the time left fits drain + verify + margin; less, in proportion, when it does not."""
    nominal = drain_deadline_s + budget.verify_s + budget.margin_s
    return max(0.0, min(1.0, (not_after - start) / nominal))


def must_start_by(*, not_after: float, budget: Budget, holds: bool) -> float:
    """A drain waiting for a disruption-budget slot starts anyway at this time: the deadline wins."""
    if not holds:
        return not_after
    return not_after - (budget.verify_s + budget.margin_s)


def backoff_s(attempt: int, *, initial_s: float, max_s: float, hint_s: float | None = None) -> float:
    """Delay before retry `attempt` (1, 2, ...) after a temporary error: doubling, capped, at least the hint
    (the one backoff: controller/core/retrying.py)."""
    return _backoff_s(attempt, initial_s=initial_s, max_s=max_s, hint_s=hint_s)
