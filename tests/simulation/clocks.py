"""The simulation's time: the true time the platforms keep, and the controller's wall clock, which may step.

Platform deadlines are instants of the true time. The controller reads `SimClock.now()`, the true time plus an
offset that a clock step (an NTP correction) changes at once, forward or back (issue 9, case 8).
"""

from __future__ import annotations

from tests.controller.engine.fakes import T0


class SimClock:
    """The controller's wall clock over the simulation's true time."""

    def __init__(self, start: float = T0) -> None:
        self.true = start
        """Seconds, the time the platforms keep; only moves forward."""
        self.offset = 0.0
        """How far the controller's wall clock is ahead of the true time (negative: behind)."""

    def now(self) -> float:
        return self.true + self.offset

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that a wall-clock step does not move."""
        return self.true - T0 + 1000.0

    def advance_to(self, true: float) -> None:
        """Move the true time forward to `true` (never back)."""
        self.true = max(self.true, true)

    def step(self, offset: float) -> None:
        """The wall clock jumps: from now on it is `offset` seconds off the true time."""
        self.offset = offset

    def to_true(self, wall: float) -> float:
        """The true time at which the wall clock will read `wall`."""
        return wall - self.offset
