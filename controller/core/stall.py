"""The no-progress rule, once: the engine's verifying phase and the agent's local fallback both follow it.

A drain is stalled when its socket count is known, above zero, and has not reached a new low for `window_s`.
The window runs from the drain *request*, not from when the drain call returned, and the first count is the
baseline, not progress: a drain call that hangs until it times out (a stopped app) must not buy the server
another window. So the controller and the agent force the same stuck drain at the same time.

    progress = Progress(window_s=3.0, since=requested_at)
    progress.see(count, now)      # after every count (None: the count failed)
    progress.stalled(now)         # -> reset what is left

Seam: the window is a duration measured by one process and belongs on the monotonic clock; both callers
still pass their wall clock's `now()` (a later issue moves them to `Clock.monotonic`, changing nothing here).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    """How one drain is progressing, count by count (in memory: a resumed drain gets a fresh window)."""

    window_s: float
    """How long without a new lowest count means no progress."""
    since: float
    """When the count last reached a new low, or when the drain was requested."""
    lowest: int | None = None
    """The lowest count seen (the first one is the baseline)."""
    count: int | None = None
    """The latest count; None when the latest look could not count."""

    def see(self, count: int | None, now: float) -> None:
        """Take one count: a new lowest one is progress and restarts the window."""
        self.count = count
        if count is None:
            return
        if self.lowest is None:
            self.lowest = count
        elif count < self.lowest:
            self.lowest, self.since = count, now

    def stalled(self, now: float) -> bool:
        """Sockets are left, and none went away for the whole window."""
        return self.count is not None and self.count > 0 and now - self.since >= self.window_s

    def stalls_at(self) -> float | None:
        """When it is stalled if no count falls until then; None while the latest count is unknown or zero."""
        if self.count is None or self.count == 0:
            return None
        return self.since + self.window_s
