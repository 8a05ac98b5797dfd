"""The disruption budget: at most K instances of a pool draining at once, earliest deadline first.

The budget is a preference and the platform's deadline a guarantee: a drain that has waited until
`must_start_by` starts beyond the budget rather than let its instance be deleted undrained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.core.models import Drain, EventKind, Phase


@dataclass(frozen=True)
class Admission:
    start: bool
    why: str


def earliest_deadline_first(drain: Drain) -> tuple[float, float, int]:
    """The order waiting drains are admitted in: deadline, then arrival, then id."""
    return (drain.not_after, drain.created_at, drain.id)


def waiting(drains: Iterable[Drain]) -> list[Drain]:
    """The drains that wait for a slot (pending, not an operator's reset), earliest deadline first."""
    return sorted((d for d in drains if d.phase is Phase.PENDING and d.kind is not EventKind.RESET),
                  key=earliest_deadline_first)


def admit(candidate: Drain, drains: Iterable[Drain], *, slots: int, now: float, must_start_by: float) -> Admission:
    """May `candidate` (pending) start now, given every current episode?"""
    same_pool = [d for d in drains if d.pool == candidate.pool]
    draining = sum(1 for d in same_pool if d.active)
    queue = waiting(same_pool)
    free = slots - draining
    ahead = next((i for i, d in enumerate(queue) if d.id == candidate.id), len(queue))
    if ahead < free:
        return Admission(True, f"{draining}/{slots} of pool {candidate.pool} draining, earliest deadline next")
    if now >= must_start_by:
        return Admission(True, f"deadline near: starting beyond the budget ({draining}/{slots} draining)")
    return Admission(
        False, f"waiting for the disruption budget: {draining}/{slots} of pool {candidate.pool} draining, {ahead} ahead"
    )
