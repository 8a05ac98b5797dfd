"""The one inventory of a controller process, and its one map of agents: every instance it can drain.

Members come from four places, and each is one entry here, by instance name:

    static      `instances:` in controller.yaml (their clients are the static `AgentHosts`'); always wins
    gcp, azure  a discovery round (`controller/hosts/discovering.py`) hands its platform's members to `apply`
    kubernetes  the pod watch puts and drops pods one at a time (`put`, `drop`), as watch events arrive
    push        an agent's push (`POST /v1/pushes`) named an instance nobody listed yet (`learn`)

The fleet keeps instance -> pool in the shared `Inventory` (what the engine reads), is the engine's `Hosts` and
the mapping of agents that the backstop poll reads and the releases call. Every client it makes reports whether
its agent answered (`drainctl_agent_up{host}`, `hosts/reachability.py`), as the static ones do. It exports

    drainctl_discovery_instances{platform}                     instances the platform's discovery holds now
    drainctl_discovery_last_success_timestamp_seconds{platform}  unix time of its last listing that answered
    drainctl_discovery_round_duration_seconds{platform}        how long its last answered round took (list + apply)

A member its platform no longer lists is dropped once no drain of it is open (`busy`); until then it stays, so
its drain can finish, and it leaves when that drain is journaled finished (the fleet hears the engine). A
pushed member has no platform listing it: it is gone when its agent has not answered for `learned_ttl_s`
(the backstop poll asks it every round); a platform that lists it later takes it over (one agent, its address).
While a platform has not listed once yet (`expect`), an instance nobody knows is a temporary error, not an
unknown one: a drain resumed at startup waits for the first listing instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from controller.core.announcements import Announcement, Journaled
from controller.core.errors import TemporaryError
from controller.core.inventory import Inventory
from controller.core.members import Member
from controller.core.ports import UnknownHost
from controller.hosts.client import AgentClient
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability

log = logging.getLogger(__name__)

PUSH = "push"
"""The `platform` of a member learned from its agent's push."""
LEARNED_TTL_S = 600.0


class NotListedYet(TemporaryError):
    """An instance nobody knows while a platform has not listed its instances once yet: ask again soon."""


class Refreshing(Protocol):
    platform: str

    async def refresh(self) -> None:
        """Return once a round that started after this call has answered."""


@dataclass
class _Entry:
    member: Member
    client: AgentClient | None = None
    gone: bool = False
    """Missing from its platform's listing, kept while a drain of it is open."""
    silent_since: float | None = None
    """A pushed member: when its agent stopped answering (None: it answered the last request)."""


class Fleet(Mapping[str, AgentClient]):
    """Static agents first, then discovered and learned ones, by instance name."""

    def __init__(
        self,
        inventory: Inventory,
        static: Mapping[str, AgentClient],
        *,
        timeout_s: float,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        pool: AgentPool | None = None,
        reachability: AgentReachability | None = None,
        token: str | None = None,
        learned_ttl_s: float = LEARNED_TTL_S,
    ) -> None:
        """`token`: the fleet's agent token that a learned instance is called with (`agents.token_file`);
        None: pushes from unknown instances are refused. `reachability`: the `drainctl_agent_up` gauge."""
        self.inventory = inventory
        self._pool = pool
        self._static = static
        self._timeout_s = timeout_s
        self._clock = clock
        self._reachability = reachability
        self._token = token
        self._learned_ttl_s = learned_ttl_s
        self._entries: dict[str, _Entry] = {}
        self._counts: Counter[str] = Counter()
        """Members by platform, kept as they change (a relist of 10,000 pods must not count 10,000 times)."""
        self._awaited: set[str] = set()
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

    # --- discovery: whole rounds (gcp, azure) and single changes (kubernetes) ----------------------------------

    def apply(self, platform: str, members: Iterable[Member], *, started: float | None = None) -> None:
        """A round of `platform` answered with exactly these members (add, update, drop the missing).
        `started`: when the round began (`time.monotonic()`), for its duration gauge."""
        fresh = {m.name: m for m in members if m.name not in self._static}
        for member in fresh.values():
            self._put(member)
        for name, entry in list(self._entries.items()):
            if entry.member.platform == platform and name not in fresh:
                self._missing(name, entry)
        self.listed(platform)
        if started is not None:
            self._round_s.labels(platform).set(time.monotonic() - started)

    def put(self, member: Member) -> None:
        """One member of its platform is there now (added or changed); a static name is left alone."""
        if member.name not in self._static:
            self._put(member)

    def drop(self, platform: str, name: str) -> None:
        """`platform` no longer has `name` (kept while a drain of it is open)."""
        entry = self._entries.get(name)
        if entry is not None and entry.member.platform == platform:
            self._missing(name, entry)

    def expect(self, platform: str) -> None:
        """`platform` will list its instances: until it has (`listed`), an unknown instance may still be its."""
        self._awaited.add(platform)

    def listed(self, platform: str) -> None:
        """`platform` answered a whole listing (a round, a list of the pods)."""
        self._awaited.discard(platform)
        self._instances.labels(platform).set(self._counts[platform])
        self._last_success.labels(platform).set(self._clock())

    def count(self, platform: str) -> int:
        return self._counts[platform]

    def _counted(self, platform: str, change: int) -> None:
        self._counts[platform] += change
        self._instances.labels(platform).set(self._counts[platform])

    def member(self, name: str) -> Member | None:
        entry = self._entries.get(name)
        return entry.member if entry is not None else None

    def _put(self, member: Member) -> None:
        entry = self._entries.get(member.name)
        if entry is None:
            log.info("discovery %s: %s joins (pool %s, agent %s)", member.platform, member.name, member.pool,
                     member.agent_url)
            self._entries[member.name] = _Entry(member)
            self._counted(member.platform, +1)
        elif entry.member != member or entry.gone:
            if entry.member.platform != member.platform:
                log.info("discovery %s: %s (known from %s) is %s's now", member.platform, member.name,
                         entry.member.platform, member.platform)
            if entry.member.agent_url != member.agent_url and entry.client is not None:
                self._close_later(entry.client)
                entry.client = None
            before, entry.member, entry.gone, entry.silent_since = entry.member, member, False, None
            if before.platform != member.platform:
                self._counted(before.platform, -1)
                self._counted(member.platform, +1)
        self.inventory[member.name] = member.pool

    def _missing(self, name: str, entry: _Entry) -> None:
        if self.busy(name):
            if not entry.gone:
                log.info("discovery %s: %s is gone; kept until its drain ends", entry.member.platform, name)
            entry.gone = True
            return
        self._forget(name, entry)

    def _forget(self, name: str, entry: _Entry) -> None:
        log.info("discovery %s: %s left", entry.member.platform, name)
        del self._entries[name]
        self._counted(entry.member.platform, -1)
        self.inventory.pop(name, None)
        if self._reachability is not None:
            self._reachability.forget(name)
        if entry.client is not None:
            self._close_later(entry.client)

    def hear(self, announcement: Announcement) -> None:
        """A listener of the engine: a gone member leaves as soon as its drain is journaled finished."""
        if isinstance(announcement, Journaled) and announcement.after.finished:
            name = announcement.after.instance
            entry = self._entries.get(name)
            if entry is not None and entry.gone:
                self._forget(name, entry)

    # --- pushes --------------------------------------------------------------------------------------------------

    @property
    def can_learn(self) -> bool:
        """Whether a push from an unknown instance can be taken (the fleet's agent token is configured)."""
        return self._token is not None

    def learn(self, instance: str, agent_url: str, pool: str) -> bool:
        """Know `instance` from its push (a member of platform "push"); False when it was already known: a push
        never redirects the calls of an instance the fleet knows."""
        if self._token is None:
            raise UnknownHost(f"{instance}: not in the inventory, and agents.token_file is not set to learn it")
        if instance in self._static or instance in self._entries:
            return False
        self._put(Member(instance, pool, agent_url, self._token, PUSH))
        return True

    def _heard(self, name: str, answered: bool) -> None:
        """A pushed member's agent answered or not; silent for `learned_ttl_s`, it is gone."""
        entry = self._entries.get(name)
        if entry is None or entry.member.platform != PUSH:
            return
        if answered:
            entry.silent_since = None
        elif entry.silent_since is None:
            entry.silent_since = self._clock()
        elif self._clock() - entry.silent_since >= self._learned_ttl_s and not entry.gone:
            log.info("push: %s's agent has not answered for %.0f s", name, self._clock() - entry.silent_since)
            self._missing(name, entry)

    # --- agents ------------------------------------------------------------------------------------------------

    def host(self, instance: str) -> AgentClient:
        """The `Hosts` port: the agent of any member (static first)."""
        static = self._static.get(instance)
        if static is not None:
            return static
        entry = self._entries.get(instance)
        if entry is None:
            if self._awaited:
                raise NotListedYet(f"{instance}: not known yet; waiting for the first listing of "
                                   f"{', '.join(sorted(self._awaited))}", delay_s=1.0)
            raise UnknownHost(f"{instance}: not in the inventory (not in instances:, not discovered, not pushed)")
        if entry.client is None:
            member = entry.member
            entry.client = AgentClient(member.agent_url, member.agent_token, timeout_s=self._timeout_s,
                                       pool=self._pool, observe=self._observer(instance))
        return entry.client

    def _observer(self, instance: str) -> Callable[[bool], None]:
        gauge = None if self._reachability is None else self._reachability.observer(instance)

        def observe(answered: bool) -> None:
            if gauge is not None:
                gauge(answered)
            self._heard(instance, answered)

        return observe

    def __getitem__(self, instance: str) -> AgentClient:
        try:
            return self.host(instance)
        except (UnknownHost, NotListedYet):
            raise KeyError(instance) from None

    def __iter__(self) -> Iterator[str]:
        yield from self._static
        yield from (name for name in list(self._entries) if name not in self._static)

    def __len__(self) -> int:
        return len(self._static) + sum(1 for name in self._entries if name not in self._static)

    def __contains__(self, instance: object) -> bool:
        return instance in self._static or instance in self._entries

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
