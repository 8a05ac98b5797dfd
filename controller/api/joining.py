"""A drain request that joins a running drain: which of its options (`--rate`, `--deadline`) were not applied.

A joined drain keeps its pace, and its reset time only ever moves earlier (a shorter `--deadline` tightens it,
a longer one cannot loosen it): the API says so in the answer's `not_applied`, so the CLI never drops an
option silently.
"""

from __future__ import annotations

from typing import Any

from controller.api.bodies import DrainRequest
from controller.core.models import Disposition, Drain
from controller.engine import Submission

TOLERANCE_S = 0.5
"""A reset time this close to the one asked for counts as applied (the request's own clock reading)."""


def not_applied(request: DrainRequest, submission: Submission, *, now: float) -> list[dict[str, Any]]:
    """`[{"flag", "option", "asked", "kept", "why"}]`, empty unless the request joined a running drain."""
    drain = submission.drain
    if submission.disposition is not Disposition.MERGED or drain is None:
        return []
    dropped = []
    if request.rate_per_s is not None and abs(request.rate_per_s - drain.rate_per_s) > 1e-9:
        dropped.append({"flag": "--rate", "option": "rate_per_s", "asked": request.rate_per_s,
                        "kept": drain.rate_per_s, "why": f"drain {drain.id} goes on at {drain.rate_per_s:g}/s"})
    if request.deadline_s is not None:
        reset_in_s = _reset_at(drain, now) - now
        if reset_in_s < request.deadline_s - TOLERANCE_S:
            dropped.append({"flag": "--deadline", "option": "deadline_s", "asked": request.deadline_s,
                            "kept": round(reset_in_s, 3),
                            "why": f"drain {drain.id} resets what is left sooner, in {max(0.0, reset_in_s):.1f} s"})
    return dropped


def _reset_at(drain: Drain, now: float) -> float:
    """When the joined drain resets what is left: its timer, or for one still pending, the earliest it could."""
    if drain.force_at is not None:
        return drain.force_at
    return min(drain.not_after, now + drain.drain_deadline_s)
