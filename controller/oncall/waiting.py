"""`drainctl drain --wait`: follow one drain until it ends, with a live progress line while it runs.

The line shows what the controller last observed (sockets remaining, the pace asked for, time to the reset),
plus the closing rate seen over the last couple of seconds, and, while something fails (an agent unreachable,
a reset being retried), that failure first. It fits an 80-column terminal. On a terminal it updates in place;
in a pipe or a file a line is written when the phase, the failure or the count changes (at most every
`PIPE_EVERY_S` for a count alone), so a failure that lasts is said once. The loop polls the API; the drain
itself runs in the controller, so stopping the wait (Ctrl-C) stops nothing but the wait.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from controller.oncall import views
from controller.oncall.client import ControllerClient

POLL_S = 0.25
"""How often the instance's status is read while waiting."""
RATE_WINDOW_S = 2.0
"""The observed closing rate is measured over this much recent time."""
PIPE_EVERY_S = 2.0
"""Without a terminal (a pipe, a log file), a progress line this often instead of one line updated in place."""


class ClosingRate:
    """Sockets closed per second over the last `RATE_WINDOW_S`, from successive remaining counts."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def see(self, remaining: int | None, at: float) -> float | None:
        if remaining is None:
            return None
        self._samples.append((at, remaining))
        while len(self._samples) > 2 and at - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        return max(0.0, (first - last) / (last_at - first_at)) if last_at > first_at else None


def follow(client: ControllerClient, instance: str, drain_id: int, *, console: Console | None) -> dict[str, Any]:
    """Poll until drain `drain_id` has ended; its record `{"drain", "journal"}`. No progress line without a console."""
    rate = ClosingRate()
    display = _Display(console, f"{instance}: following drain {drain_id}")
    try:
        with display:
            while True:
                status = client.instance(instance)
                if status.get("drain_id") != drain_id or status.get("finished"):
                    break
                observed = rate.see(status.get("sockets_remaining"), time.monotonic())
                display.show(views.progress_line(status, observed, width=display.width),
                             views.progress_key(status))
                time.sleep(POLL_S)  # the pace of the progress line; the API's answer decides when to stop
    except KeyboardInterrupt:
        print(f"drainctl: stopped waiting; drain {drain_id} goes on (`drainctl status`)", file=sys.stderr)
        raise
    return client.drain_record(drain_id)


class _Display:
    """On a terminal, one line updated in place; in a pipe or a file, a line every `PIPE_EVERY_S`; else nothing."""

    def __init__(self, console: Console | None, first: str) -> None:
        self._console = console
        self._live = Live(Text(first), console=console, auto_refresh=False, transient=True) \
            if console is not None and console.is_terminal else None
        self._printed_at: float | None = None
        self._printed_key: tuple[object, ...] | None = None

    @property
    def width(self) -> int:
        """The line's room: 80 columns, or less on a narrower terminal."""
        if self._console is None or not self._console.is_terminal:
            return views.LINE_WIDTH
        return min(views.LINE_WIDTH, self._console.width)

    def __enter__(self) -> _Display:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def show(self, line: Text, key: tuple[object, ...]) -> None:
        """`key`: what the line says apart from its countdowns; in a pipe an unchanged one is not repeated."""
        if self._live is not None:
            self._live.update(line, refresh=True)
            return
        if self._console is None or key == self._printed_key:
            return
        now = time.monotonic()
        news = self._printed_key is None or key[:2] != self._printed_key[:2]
        if news or self._printed_at is None or now - self._printed_at >= PIPE_EVERY_S:
            self._console.print(line)
            self._printed_at, self._printed_key = now, key
