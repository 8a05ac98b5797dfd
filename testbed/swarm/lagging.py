"""How late the swarm's own event loop runs: the instrument's error, reported next to what it measured.

Every client of the swarm shares one event loop. When the process gets too little CPU (a loaded machine) or
something blocks the loop, a client notices its close late, sleeps its backoff late and answers its join
late, and the offline time it records grows by that lag, though the servers did nothing wrong. A 50 ms timer
that records how late it fires measures exactly that error; the report gives its p99 and maximum over the
time after every client had joined once (the initial connect storm is not part of any offline time).
"""

from __future__ import annotations

import array
import asyncio
import math

INTERVAL_S = 0.05


class LoopLag:
    """Samples the event loop's lag every `INTERVAL_S` (one instance per swarm; `run()` is its task)."""

    def __init__(self) -> None:
        self._samples = array.array("d")
        """Lag of each tick in seconds; 8 bytes a sample, 576 KB for an hour."""

    def restart(self) -> None:
        """Forget the samples so far (called once every client has joined)."""
        self._samples = array.array("d")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due_s = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            self._samples.append(max(0.0, loop.time() - due_s))

    def summary(self) -> dict[str, float | int | None]:
        """`{"p99", "max", "samples"}` in seconds (nearest rank; None without samples)."""
        ordered = sorted(self._samples)
        if not ordered:
            return {"p99": None, "max": None, "samples": 0}
        p99 = ordered[max(1, math.ceil(0.99 * len(ordered))) - 1]
        return {"p99": round(p99, 4), "max": round(ordered[-1], 4), "samples": len(ordered)}
