"""The hosts of the static inventory (`instances:` in controller.yaml), reached through their node agents.

`AgentHosts` gives the engine's `Hosts` port an `AgentClient` for every configured instance (the client already
has exactly the methods of `HostActions`); the fleet (`fleet.py`) holds them with every other member.
`HostsChain` lets several inventories (the fleet, a platform's own `Parts.hosts`) serve one engine.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.core.ports import HostActions, Hosts, UnknownHost
from controller.hosts.client import AgentClient
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability


class AgentHosts:
    """The static inventory's hosts, reached through their node agents (through one shared pool)."""

    def __init__(
        self, targets: Mapping[str, tuple[str, str]], *, timeout_s: float, pool: AgentPool | None = None,
        reachability: AgentReachability | None = None,
    ) -> None:
        """`targets`: instance -> (its agent's base URL, the agent's bearer token). `pool`: the shared one (the
        composition root's, which closes it); None: one of its own, closed by `aclose`. `reachability`: the
        `drainctl_agent_up` gauge every client sets."""
        self._pool = pool if pool is not None else AgentPool()
        self._own_pool = pool is None
        self._clients = {
            name: AgentClient(url, token, timeout_s=timeout_s, pool=self._pool,
                              observe=None if reachability is None else reachability.observer(name))
            for name, (url, token) in targets.items()
        }

    def host(self, instance: str) -> AgentClient:
        try:
            return self._clients[instance]
        except KeyError:
            raise UnknownHost(f"{instance}: not in the inventory (instances: in the controller config)") from None

    def clients(self) -> Mapping[str, AgentClient]:
        return self._clients

    async def aclose(self) -> None:
        if self._own_pool:
            await self._pool.aclose()


class HostsChain:
    """The first inventory that knows the instance answers (the fleet first, then a platform's own)."""

    def __init__(self, *inventories: Hosts) -> None:
        self._inventories = inventories

    def host(self, instance: str) -> HostActions:
        first: UnknownHost | None = None
        for inventory in self._inventories:
            try:
                return inventory.host(instance)
            except UnknownHost as exc:
                first = first or exc
        if first is not None and len(self._inventories) == 1:
            raise first
        raise UnknownHost(f"{instance}: in none of the inventories (the config's instances, the platforms' hosts)")
