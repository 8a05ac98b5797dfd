"""An even pace for the backstop's reads: request starts at least `1 / rate_per_s` apart, never a burst.

The backstop poll (`watching.py`) reads every agent once a round. At 10,000 agents an unpaced round is a burst of
10,000 requests that costs the controller most of a core while it lasts and queues the engine's own calls behind
it; paced, the same round is a steady trickle whose cost per second is set by the rate (`sources.local.rate_per_s`)
and whose length follows from it (agents / rate). Hand-written rather than a token bucket (aiolimiter): a bucket
lets its whole capacity go at once after an idle spell, which is the burst this exists to avoid.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Pace:
    """Lets however many workers start one at a time, `1 / rate_per_s` apart; None rate: no pacing.

    The gap is counted from when the previous turn really began (a late wake-up on a busy loop is not made up
    by a shorter gap after it), so the rate is a ceiling, never exceeded over any two turns."""

    def __init__(
        self, rate_per_s: float | None, *, now: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._gap_s = 0.0 if rate_per_s is None else 1.0 / rate_per_s
        self._now = now
        self._sleep = sleep
        self._next = float("-inf")
        self._turns = asyncio.Lock()

    async def wait(self) -> None:
        """Return at this caller's turn: one gap after the previous turn began, or now if that has passed."""
        if self._gap_s == 0.0:
            return
        async with self._turns:
            early_s = self._next - self._time()
            if early_s > 0:
                await self._sleep(early_s)
            self._next = self._time() + self._gap_s

    def _time(self) -> float:
        return self._now() if self._now is not None else asyncio.get_running_loop().time()
