"""The no-progress rule, once: the engine's verifying phase and the agent's local fallback both follow it.

A drain is stalled when its socket count is known, above zero, and has not reached a new low for its window.
The window runs from the drain *request*, not from when the drain call returned, and the first count is the
baseline, not progress: a drain call that hangs until it times out (a stopped app) must not buy the server
another window. So the controller and the agent force the same stuck drain at the same time.

    progress = Progress(window_s=3.0, since=requested_at, rate_per_s=rate)   # times: Clock.monotonic()
    progress.see(count, now, counter="kernel")   # after every count (None: the count failed)
    progress.stalled(now)                         # -> reset what is left

Issue 9, case 7, two rules that keep a slow but moving drain from being forced early:

- The window stretches with the drain's rate: a drain at `rate_per_s` loses one socket every 1/rate seconds,
  so a window shorter than that always looks stuck (a manual `--rate 0.1` against a 3 s window). The window is
  `max(window_s, SOCKETS_PER_WINDOW / rate_per_s)`.
- Progress compares counts of the same counter: a baseline from Prometheus (the app's gauge, which misses
  half-open sockets) is no yardstick for a kernel count, which is higher while it falls. Each counter keeps its
  own lowest count; the first count of each is its baseline; a new low of either is progress.

Issue 9, case 8: the window is a duration, so every time given here is monotonic (`Clock.monotonic()`): a wall
clock step forward must not force a moving drain, nor a step back delay forcing a stuck one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOCKETS_PER_WINDOW = 3.0
"""How many sockets' worth of time (at the drain's rate) the window lasts at least. One is too few: an app that
closes sockets on a timer tick, or a count taken just before a socket goes, shows no new low for up to two
intervals of 1/rate while the drain moves; three leaves a margin for that jitter and still forces a stuck slow
drain within the time three sockets would have taken."""


def window_for(window_s: float, rate_per_s: float | None) -> float:
    """The no-progress window of a drain at `rate_per_s` (None or not positive: `window_s` as configured)."""
    if rate_per_s is None or rate_per_s <= 0:
        return window_s
    return max(window_s, SOCKETS_PER_WINDOW / rate_per_s)


@dataclass
class Progress:
    """How one drain is progressing, count by count (in memory: a resumed drain gets a fresh window)."""

    window_s: float
    """How long without a new lowest count means no progress, at a fast rate (see `window`)."""
    since: float
    """When a count last reached a new low, or when the drain was requested (monotonic seconds)."""
    rate_per_s: float | None = None
    """The drain's rate, which stretches the window (None: `window_s` as it is)."""
    lowest: dict[str, int] = field(default_factory=dict)
    """The lowest count seen of each counter ("kernel", "prometheus"); the first of each is its baseline."""
    count: int | None = None
    """The latest count; None when the latest look could not count."""

    @property
    def window(self) -> float:
        """The window in force: `window_s`, stretched to the time `SOCKETS_PER_WINDOW` sockets take."""
        return window_for(self.window_s, self.rate_per_s)

    def see(self, count: int | None, now: float, *, counter: str = "kernel") -> None:
        """Take one count of `counter`: a new lowest one of that counter is progress and restarts the window."""
        self.count = count
        if count is None:
            return
        lowest = self.lowest.get(counter)
        if lowest is None or count < lowest:
            self.lowest[counter] = count
        if lowest is not None and count < lowest:
            self.since = now

    def stalled(self, now: float) -> bool:
        """Sockets are left, and none went away for the whole window."""
        return self.count is not None and self.count > 0 and now - self.since >= self.window

    def stalls_at(self) -> float | None:
        """When it is stalled if no count falls until then; None while the latest count is unknown or zero."""
        if self.count is None or self.count == 0:
            return None
        return self.since + self.window
