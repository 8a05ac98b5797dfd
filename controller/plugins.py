"""The contract between the composition root (`controller/app.py`) and a platform package (a plugin).

A platform is one package under `controller/platforms/` with one entry point, `PLATFORM`: its name (its section
under `sources:` in controller.yaml), that section's frozen model, optionally the kind of `leader:` section it
serves, and `connect`, which turns the parsed section into `Parts`. The composition root loops over the
registered platforms (`controller.platforms.PLATFORMS`) and knows none of them by name.

    PLATFORM = Platform(name="gcp", settings=GcpSourceConfig, connect=connect)

    def connect(settings: GcpSourceConfig, context: Context) -> Parts:
        return Parts(sources=(...,), releasers={"gcp": ...}, close=api.aclose)

What a platform may contribute (each optional): sources that watch it, releasers (by source name) that let it
proceed, hosts it can reach that the static inventory does not have, instances it adds to the shared
inventory, runnables (loops beside the engine, each flagged whether only the leader runs it), a leader elector,
whether operators may drain through the API (the manual platform), listeners of the engine, and the load
balancers the drain's out-of-rotation step can observe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from controller.core.budget import Budget
from controller.core.inventory import Inventory
from controller.core.ports import (
    AsyncListener,
    Balancer,
    Hosts,
    Journal,
    LeaderElector,
    Listener,
    Releaser,
    Source,
    Work,
)
from controller.core.source_metrics import SourceMetrics
from controller.hosts.client import AgentClient
from controller.hosts.fleet import Fleet
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability


@dataclass(frozen=True)
class Runnable:
    """A loop that runs beside the engine until cancelled (controller-runtime's Runnable)."""

    name: str
    run: Work
    leader_only: bool = True
    """Only while this controller leads (a loop that acts); False: on every replica (a loop that only reads)."""


@dataclass(frozen=True)
class Context:
    """What the composition root hands every platform's `connect`."""

    inventory: Inventory
    """Shared instance -> pool map; a platform adds the instances it discovers and removes those that are gone."""
    agents: Mapping[str, AgentClient]
    """Every agent by instance: the fleet's (static, discovered, learned from pushes) when the composition root
    built one."""
    agent_timeout_s: float
    budget: Budget
    source_metrics: SourceMetrics
    leader: BaseModel | None
    """The `leader:` section; the platform whose `leader` kind it is builds the elector."""
    fleet: Fleet | None = None
    """The one inventory of the process (static, discovered and pushed instances, their agents): a platform's
    discovery feeds it, by rounds (`controller/hosts/discovering.py`) or one change at a time (`put`, `drop`);
    `agents` is this fleet when the composition root built it."""
    journal: Journal | None = None
    """The journal the engine writes (an elector that fences its writes needs it)."""
    agent_pool: AgentPool | None = None
    """The process's one HTTP client for agents: pass it to every `AgentClient` a platform makes."""
    agent_reachability: AgentReachability | None = None
    """`drainctl_agent_up{instance}`: a platform's own agent clients report to it too (`observe=`)."""


@dataclass(frozen=True)
class Parts:
    """What one platform contributes to a running controller."""

    sources: tuple[Source, ...] = ()
    releasers: Mapping[str, Releaser] = field(default_factory=dict)
    """By source name: how drains of that source's events are released."""
    hosts: Hosts | None = None
    """Hosts neither the static inventory nor the fleet has (a platform's own way of reaching them); the
    platforms in this tree put their instances in the fleet instead."""
    runnables: tuple[Runnable, ...] = ()
    leader: LeaderElector | None = None
    operator_drains: bool = False
    """Operators may drain and reset through the API (`drainctl drain`, `drainctl reset`)."""
    listeners: tuple[Listener | AsyncListener, ...] = ()
    """Hear what the engine did, after it is journaled (the Kubernetes platform's pod Events)."""
    balancers: tuple[Balancer, ...] = ()
    """Load balancers the out-of-rotation step can observe (GCP backend health, Kubernetes EndpointSlices);
    used only with `rotation.enabled`."""
    close: Callable[[], Awaitable[None]] | None = None
    """Closes what `connect` opened (API clients); called once when the controller stops."""


Connect = Callable[[Any, Context], Parts]


@dataclass(frozen=True)
class Platform:
    name: str
    """The section under `sources:` (and the platform's name in docs and errors)."""
    settings: type[BaseModel]
    """The section's model; its defaults are what a controller.yaml without the section means."""
    connect: Connect
    leader: type[BaseModel] | None = None
    """The model of the `leader:` section this platform serves (told apart by its `kind` field), if any."""
