"""The work queue of the level-triggered reconciler: instance keys, each due at a time.

A key is in the queue at most once (the earliest due time wins), and a key being worked on is not handed
out again until its worker is done: one worker per instance at a time.
"""

from __future__ import annotations

import math
from collections.abc import Collection


class DueQueue:
    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    def schedule(self, key: str, at: float) -> None:
        """Make `key` due at `at`, or earlier if it already is."""
        self._due[key] = min(self._due.get(key, math.inf), at)

    def pop_due(self, now: float, *, busy: Collection[str] = ()) -> list[str]:
        """Keys due by `now` that are not `busy`, earliest first; they leave the queue."""
        due = sorted((at, key) for key, at in self._due.items() if at <= now and key not in busy)
        for _, key in due:
            del self._due[key]
        return [key for _, key in due]

    def next_at(self, *, busy: Collection[str] = ()) -> float | None:
        times = [at for key, at in self._due.items() if key not in busy]
        return min(times) if times else None

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)
