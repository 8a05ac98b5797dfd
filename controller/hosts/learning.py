"""The agents of instances the controller learns from their own pushes, beside the config's static ones.

An agent's push (`POST /v1/pushes`) carries its instance name and the URL the controller should call back, so
a notice from an instance that no config and no discovery round has listed yet is still drained (DESIGN.md
§10). `KnownAgents` is the mapping of every agent the controller can reach by name (what the backstop poll
reads and the notices release calls) and a `Hosts` for the engine; a learned agent is reached with the fleet's
agent token (`agents.token_file`) through the shared pool. A name already known keeps its address: a push
never redirects the controller's calls for an instance it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from controller.core.inventory import Inventory
from controller.core.ports import UnknownHost
from controller.hosts.client import AgentClient
from controller.hosts.pooling import AgentPool

log = logging.getLogger(__name__)


class KnownAgents(Mapping[str, AgentClient]):
    """Static agents first, then the learned ones, by instance name."""

    def __init__(
        self, static: Mapping[str, AgentClient], inventory: Inventory, pool: AgentPool, *,
        token: str | None, timeout_s: float,
    ) -> None:
        self._static = static
        self._inventory = inventory
        self._pool = pool
        self._token = token
        self._timeout_s = timeout_s
        self._learned: dict[str, AgentClient] = {}

    @property
    def can_learn(self) -> bool:
        """Whether a push from an unknown instance can be taken (the fleet's agent token is configured)."""
        return self._token is not None

    def learn(self, instance: str, agent_url: str, pool: str) -> bool:
        """Know `instance` from now on (in the inventory and here); False when it was already known."""
        if self._token is None:
            raise UnknownHost(f"{instance}: not in the inventory, and agents.token_file is not set to learn it")
        if instance in self._inventory or instance in self._static or instance in self._learned:
            self._inventory.learn(instance, pool)
            return False
        self._learned[instance] = AgentClient(agent_url, self._token, timeout_s=self._timeout_s, pool=self._pool)
        self._inventory.learn(instance, pool)
        log.info("learned %s (pool %s) from its push, agent %s", instance, pool, agent_url)
        return True

    def host(self, instance: str) -> AgentClient:
        """The `Hosts` port for the learned agents."""
        try:
            return self._learned[instance]
        except KeyError:
            raise UnknownHost(f"{instance}: not learned from a push") from None

    def __getitem__(self, instance: str) -> AgentClient:
        found = self._static.get(instance) or self._learned.get(instance)
        if found is None:
            raise KeyError(instance)
        return found

    def __iter__(self) -> Iterator[str]:
        yield from self._static
        yield from (name for name in list(self._learned) if name not in self._static)

    def __len__(self) -> int:
        return len(self._static) + sum(1 for name in self._learned if name not in self._static)
