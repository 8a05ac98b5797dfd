"""The one inventory of a controller process: the config's instances plus what each platform discovers.

Discovery rounds (`controller/hosts/discovering.py`) hand their platform's members to `Fleet.apply`; the fleet
keeps instance -> pool in the shared `Inventory` (what the engine reads), reaches each member's agent (it is a
`Hosts`, and a mapping of agents that the notices source polls and the releases call), and exports

    drainctl_discovery_instances{platform}                     instances the platform's discovery holds now
    drainctl_discovery_last_success_timestamp_seconds{platform}  unix time of its last round that answered
    drainctl_discovery_round_duration_seconds{platform}        how long its last answered round took (list + apply)

A static instance (`instances:`) always wins over a discovered one of the same name. A member missing from a
round is dropped only once no drain of it is open (`busy`); until then it stays, so its drain can finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from controller.core.inventory import Inventory
from controller.core.members import Member
from controller.core.ports import UnknownHost
from controller.hosts.client import AgentClient
from controller.hosts.pooling import AgentPool

log = logging.getLogger(__name__)


class Refreshing(Protocol):
    platform: str

    async def refresh(self) -> None:
        """Return once a round that started after this call has answered."""


@dataclass
class _Entry:
    member: Member
    client: AgentClient | None = None
    gone: bool = False
    """Missing from its platform's last round, kept while a drain of it is open."""


class Fleet(Mapping[str, AgentClient]):
    """Static agents first, then discovered ones, by instance name."""

    def __init__(
        self,
        inventory: Inventory,
        static: Mapping[str, AgentClient],
        *,
        timeout_s: float,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        pool: AgentPool | None = None,
    ) -> None:
        self.inventory = inventory
        self._pool = pool
        self._static = static
        self._timeout_s = timeout_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.busy: Callable[[str], bool] = lambda _name: False
        """Whether a drain of the instance is open (set by the composition root once the engine exists)."""
        self.discoveries: list[Refreshing] = []
        """Every platform's discovery (they register themselves), asked for a round when an event names an
        instance that is not known yet."""
        registry = registry if registry is not None else CollectorRegistry()
        self._instances = Gauge("drainctl_discovery_instances", "Instances a platform's discovery holds now.",
                                ["platform"], registry=registry)
        self._last_success = Gauge("drainctl_discovery_last_success_timestamp_seconds",
                                   "Unix time of the last discovery round of a platform that answered.",
                                   ["platform"], registry=registry)
        self._round_s = Gauge("drainctl_discovery_round_duration_seconds",
                              "How long the last discovery round of a platform that answered took, listing and "
                              "applying.", ["platform"], registry=registry)

    # --- discovery -------------------------------------------------------------------------------------------

    def apply(self, platform: str, members: Iterable[Member], *, started: float | None = None) -> None:
        """A round of `platform` answered with exactly these members (add, update, drop the missing).
        `started`: when the round began (`time.monotonic()`), for its duration gauge."""
        fresh = {m.name: m for m in members if m.name not in self._static}
        for member in fresh.values():
            self._put(member)
        for name, entry in list(self._entries.items()):
            if entry.member.platform == platform and name not in fresh:
                self._missing(name, entry)
        self._instances.labels(platform).set(self.count(platform))
        self._last_success.labels(platform).set(self._clock())
        if started is not None:
            self._round_s.labels(platform).set(time.monotonic() - started)

    def count(self, platform: str) -> int:
        return sum(1 for e in self._entries.values() if e.member.platform == platform)

    def member(self, name: str) -> Member | None:
        entry = self._entries.get(name)
        return entry.member if entry is not None else None

    def _put(self, member: Member) -> None:
        entry = self._entries.get(member.name)
        if entry is None:
            log.info("discovery %s: %s joins (pool %s, agent %s)", member.platform, member.name, member.pool,
                     member.agent_url)
            self._entries[member.name] = _Entry(member)
        elif entry.member != member or entry.gone:
            if entry.member.agent_url != member.agent_url and entry.client is not None:
                self._close_later(entry.client)
                entry.client = None
            entry.member, entry.gone = member, False
        self.inventory[member.name] = member.pool

    def _missing(self, name: str, entry: _Entry) -> None:
        if self.busy(name):
            if not entry.gone:
                log.info("discovery %s: %s is gone; kept until its drain ends", entry.member.platform, name)
            entry.gone = True
            return
        log.info("discovery %s: %s left", entry.member.platform, name)
        del self._entries[name]
        self.inventory.pop(name, None)
        if entry.client is not None:
            self._close_later(entry.client)

    # --- agents ------------------------------------------------------------------------------------------------

    def host(self, instance: str) -> AgentClient:
        """The `Hosts` port: the agent of a discovered instance."""
        entry = self._entries.get(instance)
        if entry is None:
            raise UnknownHost(f"{instance}: not discovered by any platform")
        if entry.client is None:
            member = entry.member
            entry.client = AgentClient(member.agent_url, member.agent_token, timeout_s=self._timeout_s,
                                       pool=self._pool)
        return entry.client

    def __getitem__(self, instance: str) -> AgentClient:
        if instance in self._static:
            return self._static[instance]
        try:
            return self.host(instance)
        except UnknownHost:
            raise KeyError(instance) from None

    def __iter__(self) -> Iterator[str]:
        yield from self._static
        yield from (name for name in list(self._entries) if name not in self._static)

    def __len__(self) -> int:
        return len(self._static) + sum(1 for name in self._entries if name not in self._static)

    def _close_later(self, client: AgentClient) -> None:
        try:
            task = asyncio.get_running_loop().create_task(client.aclose())
        except RuntimeError:  # no loop runs (a synchronous caller): nothing was ever sent on it
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close the discovered agents' clients (the static ones belong to their owner)."""
        entries, self._entries = self._entries, {}
        for entry in entries.values():
            if entry.client is not None:
                await entry.client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
