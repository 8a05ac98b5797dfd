"""The idle timeout: one periodic sweep closes sockets that have been silent too long.

One sweep for all sockets rather than a timer per socket keeps 10,000 sockets cheap. A process that was
stopped (SIGSTOP, the "wedged" fault) and continued has not read what its clients sent meanwhile; the first
sweep after such a stall is skipped so those clients are not cut for the server's own silence.
"""

from __future__ import annotations

import asyncio
import logging

from testbed.server.sockets import OpenSockets

log = logging.getLogger(__name__)

IDLE_CLOSE_CODE = 1000
IDLE_CLOSE_TEXT = "idle timeout"


def sweep_interval_s(idle_timeout_s: float) -> float:
    """Sweep often enough that a socket is closed within about a quarter of the timeout after it expires."""
    return min(1.0, max(0.05, idle_timeout_s / 4))


async def sweep_idle(sockets: OpenSockets, *, idle_timeout_s: float) -> None:
    """Close every socket silent for `idle_timeout_s`, forever (cancel to stop)."""
    loop = asyncio.get_running_loop()
    interval_s = sweep_interval_s(idle_timeout_s)
    previous_s = loop.time()
    while True:
        await asyncio.sleep(interval_s)
        now_s = loop.time()
        gap_s, previous_s = now_s - previous_s, now_s
        if gap_s > 2 * interval_s + 1.0:
            log.info("event loop stalled for %.1f s (stopped?); skipping one idle sweep", gap_s)
            continue
        silent = sockets.silent_since(now_s - idle_timeout_s)
        if silent:
            log.info("closing %d sockets silent for %g s", len(silent), idle_timeout_s)
        for connection in silent:
            sockets.close(connection, code=IDLE_CLOSE_CODE, text=IDLE_CLOSE_TEXT, reason="idle_timeout")
