"""The drain's first step, out of rotation: not ready first, the first socket closed only once the load
balancer has stopped routing new connections to the host (issue 15).

Without it, sockets are asked to reconnect while the load balancer still sends reconnects to the draining
server, which refuses them (503) and the clients retry, some into the connect rate limiter. The step:

1. ask the host's app to turn not ready (`/readyz` 503) while it keeps serving and admitting sockets;
2. wait until a load balancer that can be observed (`Balancer`: HAProxy's runtime API, a GCP backend service's
   getHealth, a Kubernetes Service's EndpointSlices) says it no longer routes to the host, else the budget's
   `lb_deregistration_s` (check interval x threshold + one timeout).

The step is skipped, and closing starts at once, when the app cannot leave rotation (no hook, the call failed)
or says it is still ready (it ignores drains: a stuck server is reset by the no-progress rule, not after a
wait). A balancer that already shows the host out (the platform took it out at the lifecycle event) ends
the step at once, so the drain never waits twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from controller.core.budget import Budget
from controller.core.clocks import Clock
from controller.core.errors import DrainctlError
from controller.core.ports import Balancer, HostActions, RotationHost

log = logging.getLogger("drainctl.engine")

OBSERVED, TIMER, SKIPPED = "observed", "timer", "skipped"


@dataclass(frozen=True)
class Rotated:
    """How the out-of-rotation step ended, for the journal line."""

    how: str
    """`observed` (a balancer said so), `timer` (lb_deregistration_s passed) or `skipped`."""
    detail: str
    waited_s: float


class Rotation:
    """Takes a host out of rotation before its drain starts (one instance per engine)."""

    def __init__(
        self,
        *,
        budget: Budget,
        clock: Clock,
        balancers: Sequence[Balancer] = (),
        poll_s: float = 0.1,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._budget = budget
        self._clock = clock
        self._balancers = tuple(balancers)
        self._poll_s = poll_s
        self._sleep = sleep

    async def take_out(self, instance: str, host: HostActions) -> Rotated:
        """Turn `instance` not ready and wait until no load balancer routes to it (bounded by the budget)."""
        why_not = await self._leave(host)
        if why_not is not None:
            return Rotated(SKIPPED, f"{why_not}: closing at once", 0.0)
        started = self._clock.monotonic()
        deadline = started + self._budget.lb_deregistration_s
        while True:
            seen = await self._out_by(instance)
            waited_s = self._clock.monotonic() - started
            if seen is not None:
                return Rotated(OBSERVED, f"{seen} stopped routing to it after {waited_s:.2f} s", waited_s)
            if waited_s >= self._budget.lb_deregistration_s:
                detail = f"lb_deregistration_s ({self._budget.lb_deregistration_s:g} s) passed"
                return Rotated(TIMER, detail, waited_s)
            left_s = deadline - self._clock.monotonic()
            await self._sleep(max(0.0, min(self._poll_s if self._balancers else left_s, left_s)))

    async def _leave(self, host: HostActions) -> str | None:
        """Ask the app to leave rotation; why the step is skipped (None: the app is not ready now)."""
        if not isinstance(host, RotationHost):
            return "this host cannot leave rotation"
        try:
            still_ready = await host.not_ready()
        except DrainctlError as exc:
            return f"not-ready call failed ({exc})"
        if still_ready is None:
            return "the app has no not-ready hook"
        if still_ready:
            return "the app stayed ready (it ignores the request)"
        return None

    async def _out_by(self, instance: str) -> str | None:
        """The name of a balancer that no longer routes to `instance` (None: none says so yet)."""
        for balancer in self._balancers:
            try:
                routing = await balancer.routing(instance)
            except DrainctlError as exc:
                log.debug("%s: %s cannot tell whether it routes here: %s", instance, balancer.name, exc)
                continue
            if routing is False:
                return balancer.name
        return None
