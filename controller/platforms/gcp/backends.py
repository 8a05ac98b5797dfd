"""GCP backend services as a `Balancer`: whether the load balancer still routes new connections to an instance.

The drain's out-of-rotation step (controller/engine/rotating.py) asks this instead of waiting the budget's whole
`lb_deregistration_s`. A look is one `backendServices.getHealth` (`regionBackendServices.getHealth` for a
regional service) per configured backend service and MIG instance group, body `{"group": <instance group URL>}`,
answered with `healthStatus[]`: each instance's URL and `healthState`, HEALTHY or UNHEALTHY (the readiness
check's latest vote), and annotations drainctl does not use. For one instance:

- listed HEALTHY by any service: still routed;
- listed UNHEALTHY everywhere it is listed: out. An entry without a healthState counts as still routed, so an
  unclear answer falls back to the timer rather than closing early;
- listed by no group: out. A MIG that deletes or abandons an instance takes it out of its instance group first,
  so out of every backend service (GCP: "instances that don't exist [...] will not show up"): the step of a MIG
  deletion ends at its first look, and the drain does not wait twice (issue 15 item 3).

Looks are kept and their failures handled by `controller/balancers/observing.py` (a 403 because the role lacks
`compute.backendServices.get`, a 429, a 5xx, a timeout: "cannot tell", logged once, the step's timer decides).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controller.balancers.observing import Observed

UNHEALTHY = "UNHEALTHY"


class HealthReader(Protocol):
    async def backend_health(
        self, backend_service: str, group: str, *, region: str | None = None, timeout_s: float | None = None
    ) -> list[Any]: ...


@dataclass(frozen=True)
class BackendService:
    name: str
    region: str | None = None
    """None: global."""


class BackendHealth:
    """One look: what the configured backend services say of the configured instance groups' instances."""

    def __init__(self, api: HealthReader, services: Sequence[BackendService],
                 groups: Sequence[str] | Callable[[], Awaitable[Sequence[str]]], *, timeout_s: float = 2.0) -> None:
        """`groups`: the URLs of the instance groups (the MIGs) whose instances drain, or how to read them now (MIGs
        selected by label change as the project's MIGs do)."""
        self.name = "gcp backend service " + ", ".join(s.name for s in services)
        self._api = api
        self._services = tuple(services)
        self._groups = groups
        self._timeout_s = timeout_s

    async def look(self) -> Mapping[str, bool]:
        routed: dict[str, bool] = {}
        groups = await self._group_urls()
        for service in self._services:
            for group in groups:
                entries = await self._api.backend_health(service.name, group, region=service.region,
                                                         timeout_s=self._timeout_s)
                for name, healthy in filter(None, map(_parse, entries)):
                    routed[name] = routed.get(name, False) or healthy
        return routed

    async def _group_urls(self) -> Sequence[str]:
        return self._groups if isinstance(self._groups, Sequence) else await self._groups()

    def balancer(self, *, interval_s: float) -> Observed:
        return Observed(self.name, self.look, interval_s=interval_s)


def _parse(entry: Any) -> tuple[str, bool] | None:
    """(instance name, still routed) of one healthStatus entry; None for an entry without an instance URL."""
    if not isinstance(entry, dict) or not isinstance(entry.get("instance"), str):
        return None
    return entry["instance"].rstrip("/").rpartition("/")[2], entry.get("healthState") != UNHEALTHY
