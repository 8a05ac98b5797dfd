"""GCP discovery: the instances of the regional MIGs (named in config or selected by label), with their agents'
addresses.

Each round asks the selection for the MIGs (`selecting.py`), then lists every MIG's managed instances
(`listManagedInstances`: name and zone from the instance URL, the instance id) and, with `address: network_ip`,
the project's instances once (`instances.aggregatedList`) for each one's `networkInterfaces[0].networkIP`; with
`address: dns` the agent is reached at the zonal internal DNS name `NAME.ZONE.c.PROJECT.internal`. An instance
without an address yet (being created) waits for the next round; a malformed managed instance is logged once
and skipped. Any failed list fails the whole round, so the inventory is never replaced by part of the fleet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controller.core.members import Member
from controller.platforms.gcp.selecting import Group, Selection, selection

PLATFORM = "gcp"
log = logging.getLogger(__name__)


class InstanceLister(Protocol):
    async def list_managed_instances(self, region: str, mig: str) -> Any: ...

    async def aggregated_instances(self) -> list[Any]: ...


@dataclass(frozen=True)
class Agents:
    """How a discovered instance's agent is reached."""

    project: str
    port: int
    token: str
    scheme: str = "http"
    address: str = "network_ip"
    pool: str | None = None


@dataclass(frozen=True)
class Managed:
    name: str
    zone: str
    ident: str


def managed(raw: Any) -> Managed | None:
    """Name, zone and id of one managed instance; None when its instance URL is unusable."""
    url = raw.get("instance") if isinstance(raw, dict) else None
    parts = url.rstrip("/").split("/") if isinstance(url, str) else []
    if len(parts) < 4 or parts[-2] != "instances" or parts[-4] != "zones":
        return None
    ident = raw.get("id")
    return Managed(parts[-1], parts[-3], str(ident) if isinstance(ident, str | int) else "")


def network_ips(instances: list[Any]) -> dict[tuple[str, str], str]:
    """(zone, name) -> networkInterfaces[0].networkIP of every instance that has one."""
    found: dict[tuple[str, str], str] = {}
    for raw in instances:
        if not isinstance(raw, dict):
            continue
        name, zone, nics = raw.get("name"), str(raw.get("zone", "")).rsplit("/", 1)[-1], raw.get("networkInterfaces")
        if isinstance(name, str) and isinstance(nics, list) and nics and isinstance(nics[0], dict):
            address = nics[0].get("networkIP")
            if isinstance(address, str) and address:
                found[(zone, name)] = address
    return found


async def _none() -> list[Any]:
    return []


class GcpDiscovery:
    def __init__(self, api: InstanceLister, groups: Sequence[Group] | Selection, agents: Agents) -> None:
        self._api = api
        self._groups = selection(groups)
        self._agents = agents
        self._skipped: set[str] = set()

    async def discover(self) -> list[Member]:
        """The MIGs' listings and the project's addresses are asked for at once (each is paginated, so a round
        is as long as the longest of them, not their sum: 10,000 instances, docs/performance.md)."""
        groups = await self._groups.groups()
        listings = asyncio.gather(*(self._api.list_managed_instances(g.region, g.name) for g in groups))
        addresses = self._api.aggregated_instances() if self._agents.address == "network_ip" else _none()
        pages, instances = await asyncio.gather(listings, addresses)
        listed = list(zip(groups, pages, strict=True))
        ips = network_ips(instances)
        members = []
        for group, listing in listed:
            for raw in listing.items:
                member = self._member(group, raw, ips)
                if member is not None:
                    members.append(member)
        return members

    def _member(self, group: Group, raw: Any, ips: dict[tuple[str, str], str]) -> Member | None:
        found = managed(raw)
        if found is None:
            self._skip(f"{group}: a managed instance without a usable instance URL: {str(raw)[:120]}")
            return None
        agents = self._agents
        if agents.address == "dns":
            host = f"{found.name}.{found.zone}.c.{agents.project}.internal"
        else:
            host = ips.get((found.zone, found.name), "")
            if not host:
                log.debug("discovery gcp: %s has no networkIP yet", found.name)
                return None
        handles = {"zone": found.zone, "id": found.ident, "group": str(group)}
        return Member(found.name, agents.pool or group.name, f"{agents.scheme}://{host}:{agents.port}",
                      agents.token, PLATFORM, handles)

    def _skip(self, why: str) -> None:
        if why not in self._skipped:
            self._skipped.add(why)
            log.warning("discovery gcp: skipped %s", why)
