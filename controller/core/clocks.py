"""Time, injected: the engine and the agent read time only through a clock, so their tests run on fake ones.

Two kinds of time, never mixed up: platform deadlines (`not_after`, `release_by`) are instants on the wall
clock, shared with the platform (unix seconds); durations measured by one process (a no-progress window, a
retry's backoff) belong on the monotonic clock, which a clock step does not move.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds (platform deadlines are wall-clock instants)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that a wall-clock step does not move (durations: windows, graces)."""
        ...


class SleepingClock(Clock, Protocol):
    """A clock that can also wait (the agent's fallback and holds)."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks: wall time for deadlines, monotonic time for durations, asyncio for waiting."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
