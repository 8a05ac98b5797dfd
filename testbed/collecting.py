"""Keep Python's garbage collector from stopping the swarm or a reference server in a reconnect wave.

The swarm is a measuring instrument: thousands of clients share one event loop, so anything that stops the
loop is added to every offline time measured across it. CPython's full (generation 2) collection does: with
5,000 open sockets it walked every object of every session and stopped the loop 0.8 s at the median, 1.1 s at
most, 14 times in one 5,000-socket drain at 500/s (measured with `gc.callbacks`, load average 5.7-6.7 on 2
cores): that run's offline p50 was 4.8 s; with full collections deferred, 1.0-1.8 s in runs at the same load
(the rest is the loaded machine: `loop_lag_s` in the report shows it). Real clients are separate programs;
none of them waits for another's collector. The reference server stands in for Phoenix, whose processes
each collect their own small heap: in the same wave the survivor B stopped 0.2-0.8 s per full collection,
which found 20-86 garbage objects each time, and a stop longer than HAProxy's 300 ms check timeout, twice,
takes the survivor out of rotation (every reconnect then gets HAProxy's 503).

So full collections run only when pausing costs nothing: the swarm's when every client is connected, never
while one is offline or reconnecting; a server's when no socket has connected or closed for a while. Young
collections (generations 0 and 1, a few milliseconds) run as usual and free the short-lived garbage of each
connect. The swarm also freezes its first sessions (`gc.freeze()`: never scanned again), which live for the
whole run.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

CHECK_S = 1.0
"""How often the process looks whether a deferred full collection can run now."""
FULL_AFTER_YOUNG = 10
"""Young (generation 1) collections between two full ones: CPython's own default `threshold2`."""
_NEVER = 1 << 30
"""A `threshold2` no count reaches: CPython never starts a full collection by itself."""


class Collector:
    """Defers full collections to moments when `may_pause()` is true (one instance per process)."""

    def __init__(self, may_pause: Callable[[], bool]) -> None:
        self._may_pause = may_pause
        self._frozen = False
        self.full_collections = 0
        """Full collections run here (the swarm's report counts them)."""

    def start(self) -> None:
        """Stop CPython's automatic full collections; `run()` does them at quiet moments instead."""
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, _NEVER)

    def freeze(self) -> None:
        """Everything alive now lives for the whole run: move it out of every future collection's walk."""
        if not self._frozen:
            gc.collect()
            gc.freeze()
            self._frozen = True

    async def run(self) -> None:
        """Forever (cancel to stop): a full collection when one is due and pausing costs nothing now."""
        while True:
            await asyncio.sleep(CHECK_S)
            if gc.get_count()[2] >= FULL_AFTER_YOUNG and self._may_pause():
                gc.collect()
                self.full_collections += 1
