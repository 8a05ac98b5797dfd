"""A `Balancer` made of a platform's look at every instance at once (GCP backend health, Kubernetes
EndpointSlices): the look is kept `interval_s`, so every drain of that moment shares one round of API calls,
and a look that fails is "cannot tell", never an error the step has to handle.

An instance the look does not list is not routed (False): the platforms' looks list every instance their load
balancer may send connections to, and a platform that takes a server away (a MIG deletion, a pod deletion)
removes it from that list first. A failed look (a refusal, 429, 5xx, a timeout) is logged once when looks
start failing and once when they answer again; the next look waits at least what the error asked (Retry-After)
and a minute after a permanent refusal (the permission may be granted meanwhile). Meanwhile the
out-of-rotation step waits the budget's `lb_deregistration_s`, as without an observable balancer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from controller.core.errors import DrainctlError, PermanentError, TemporaryError

log = logging.getLogger("drainctl.balancers")

Look = Callable[[], Awaitable[Mapping[str, bool]]]
"""Every instance the load balancer knows, and whether it still routes new connections to it."""
REFUSED_PAUSE_S = 60.0
"""After a permanent refusal (403, 404), look again only this much later."""


class Observed:
    """`routing(instance)` from the latest look, refreshed when older than `interval_s`."""

    def __init__(
        self, name: str, look: Look, *, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self._look = look
        self._interval_s = interval_s
        self._clock = clock
        self._seen: Mapping[str, bool] | None = None
        self._next_at = float("-inf")
        self._failing: str | None = None

    async def routing(self, instance: str) -> bool | None:
        if self._clock() >= self._next_at:
            self._seen = await self._refresh()
        return None if self._seen is None else self._seen.get(instance, False)

    async def _refresh(self) -> Mapping[str, bool] | None:
        try:
            seen = await self._look()
        except DrainctlError as exc:
            self._failed(exc)
            return None
        self._next_at = self._clock() + self._interval_s
        if self._failing is not None:
            log.info("%s answers again: out-of-rotation steps observe it", self.name)
            self._failing = None
        return seen

    def _failed(self, exc: DrainctlError) -> None:
        pause_s = REFUSED_PAUSE_S if isinstance(exc, PermanentError) else self._interval_s
        if isinstance(exc, TemporaryError):
            pause_s = max(pause_s, exc.delay_s)
        self._next_at = self._clock() + pause_s
        kind = type(exc).__name__
        if self._failing != kind:
            log.warning("%s cannot be observed (%s): out-of-rotation steps wait lb_deregistration_s until it "
                        "answers", self.name, exc)
            self._failing = kind
