"""Graceful drain: refuse new sockets, then close the open ones with 1012 at a paced rate.

The pace is a steady clock: every tick the pacer earns `rate_per_s * elapsed` closes and spends them on the
oldest open sockets, so N sockets take about N / rate seconds and a rate change mid-drain takes effect on the
next tick. Draining is sticky: a drained server is about to be deleted. With the `ignore-drain` fault the
request is acknowledged and nothing changes (the incident this project exists for).
"""

from __future__ import annotations

import asyncio
import logging

from testbed.phoenix import CLOSE_SERVICE_RESTART
from testbed.server.metrics import ServerMetrics
from testbed.server.sockets import OpenSockets

log = logging.getLogger(__name__)

TICK_S = 0.05
"""How often the pacer closes the sockets that are due."""
MAX_STEP_S = 0.25
"""Most loop time one tick may account for, so a stalled (stopped) process does not close a burst on resume."""
DRAIN_CLOSE_TEXT = "drain"


class Drainer:
    """The server's drain state and the pacer task that carries it out."""

    def __init__(self, sockets: OpenSockets, metrics: ServerMetrics, *, ignore_requests: bool) -> None:
        self.sockets = sockets
        self.metrics = metrics
        self.ignore_requests = ignore_requests
        self.draining = False
        self.out_of_rotation = False
        """Not ready (`/readyz` 503) while still serving and admitting sockets: the drain's first step."""
        self.rate_per_s: float | None = None
        self._pacer: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """What `/readyz` says: false once out of rotation or draining."""
        return not (self.draining or self.out_of_rotation)

    def leave_rotation(self) -> bool:
        """Turn not ready but keep serving (the load balancer stops sending new sockets); whether it did."""
        if self.ignore_requests:
            log.warning("out of rotation requested: ignored (fault ignore-drain)")
            return False
        log.info("out of rotation: /readyz answers 503, %d open sockets still served", len(self.sockets))
        self.out_of_rotation = True
        return True

    def request(self, rate_per_s: float) -> None:
        """Start draining at `rate_per_s` disconnects per second, or change the pace of a running drain."""
        if self.ignore_requests:
            log.warning("drain requested at %g/s: ignored (fault ignore-drain)", rate_per_s)
            return
        log.info("drain requested at %g/s with %d open sockets", rate_per_s, len(self.sockets))
        self.draining = True
        self.rate_per_s = rate_per_s
        self.metrics.draining.set(1)
        self.metrics.drain_rate_per_s.set(rate_per_s)
        if self._pacer is None:
            self._pacer = asyncio.get_running_loop().create_task(self._pace(), name="drain-pacer")

    async def stop(self) -> None:
        """Cancel the pacer (server shutdown)."""
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        previous_s = loop.time()
        earned = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now_s = loop.time()
            earned += min(now_s - previous_s, MAX_STEP_S) * (self.rate_per_s or 0.0)
            previous_s = now_s
            due = int(earned)
            started = self.sockets.close_some(
                due, code=CLOSE_SERVICE_RESTART, text=DRAIN_CLOSE_TEXT, reason="drain"
            )
            earned = earned - due if started == due else 0.0
