"""Drain, count and reset on one host, through that host's node agent.

`HostActions` is what the reconciler needs of a host; `AgentHosts` provides it for every instance of the
static inventory with one `AgentClient` each (the client already has exactly these methods).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.clients.agent import AgentClient
from controller.config import InstanceConfig
from controller.errors import PermanentError


class HostActions(Protocol):
    """The controller's hands on one host. Errors: `TemporaryError` (retry later) or `PermanentError`."""

    async def drain(self, rate_per_s: float) -> None:
        """Ask the host's app to drain gracefully at `rate_per_s` disconnects per second."""

    async def connections(self) -> int:
        """Established sockets on the service port, counted by the host's kernel."""

    async def reset(self) -> int:
        """Reset every established socket on the service port with a TCP RST; how many were reset."""


class Hosts(Protocol):
    def host(self, instance: str) -> HostActions:
        """The host of `instance`; `UnknownHost` when the inventory does not have it."""


class UnknownHost(PermanentError):
    """The instance is not in the inventory, so the controller has no agent to call."""


class AgentHosts:
    """The static inventory's hosts, reached through their node agents (one connection pool each)."""

    def __init__(self, instances: Mapping[str, InstanceConfig], *, timeout_s: float) -> None:
        self._clients = {
            name: AgentClient(spec.agent_url, spec.agent_token.get_secret_value(), timeout_s=timeout_s)
            for name, spec in instances.items()
        }

    def host(self, instance: str) -> AgentClient:
        try:
            return self._clients[instance]
        except KeyError:
            raise UnknownHost(f"{instance}: not in the inventory (instances: in the controller config)") from None

    def clients(self) -> Mapping[str, AgentClient]:
        return self._clients

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
