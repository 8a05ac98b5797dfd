"""The work queue of the level-triggered reconciler: instance keys, each due at a time.

A key is in the queue at most once (the earliest due time wins), and a key being worked on is not handed
out again until its worker is done: one worker per instance at a time.

Due times are wall-clock instants (a pass's next time is often a deadline), but a wait is also a duration: with
a clock, a key is due when its wall instant comes *or* when the time it was scheduled to wait has elapsed on the
monotonic clock, whichever is first (issue 9, case 8: a wall-clock step back delayed every pass, forcing
included, by the size of the step). A pass that runs early finds nothing to do and asks again; passes are
idempotent.
"""

from __future__ import annotations

import math
from collections.abc import Collection

from controller.core.clocks import Clock


class DueQueue:
    def __init__(self, clock: Clock | None = None) -> None:
        """`clock`: to also measure each wait on its monotonic clock; None: `now` as given only."""
        self._clock = clock
        self._due: dict[str, float] = {}
        self._elapses: dict[str, float] = {}
        """By key: the monotonic time at which its wait has elapsed."""

    def schedule(self, key: str, at: float) -> None:
        """Make `key` due at `at`, or earlier if it already is."""
        if at < self._due.get(key, math.inf):
            self._due[key] = at
            if self._clock is not None:
                self._elapses[key] = self._clock.monotonic() + max(0.0, at - self._clock.now())

    def pop_due(self, now: float, *, busy: Collection[str] = ()) -> list[str]:
        """Keys due by `now` (or whose wait has elapsed) that are not `busy`, earliest first; they leave the queue."""
        due = sorted((at, key) for key, at in self._due.items() if self._is_due(key, at, now) and key not in busy)
        for _, key in due:
            del self._due[key]
            self._elapses.pop(key, None)
        return [key for _, key in due]

    def next_at(self, *, busy: Collection[str] = ()) -> float | None:
        """The earliest wall-clock time a key that is not `busy` is due (its elapsed wait, read on the wall)."""
        times = [self._wall_due(key, at) for key, at in self._due.items() if key not in busy]
        return min(times) if times else None

    def _is_due(self, key: str, at: float, now: float) -> bool:
        elapses = self._elapses.get(key)
        return at <= now or (elapses is not None and self._clock is not None and elapses <= self._clock.monotonic())

    def _wall_due(self, key: str, at: float) -> float:
        elapses = self._elapses.get(key)
        if elapses is None or self._clock is None:
            return at
        return min(at, self._clock.now() + elapses - self._clock.monotonic())

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)
