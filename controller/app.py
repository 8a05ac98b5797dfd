"""The composition root: a running controller built from its config, by looping over the enabled platforms.

`drainctl run` (and the end-to-end tests) use this; everything it opens is closed when the block ends.

    async with assemble(load_config(path)) as controller:
        await controller.run()

It opens the journal, the static inventory's agents and Prometheus, asks every registered platform
(`controller/platforms/__init__.py`) for its parts, and joins them: sources, releasers, hosts and runnables are
added up, never replaced. No platform is named here; adding one is a package and a line in the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from controller.config import ControllerConfig
from controller.core.build_info import export_build_info
from controller.core.clocks import Clock
from controller.core.errors import ConfigError
from controller.core.inventory import Inventory
from controller.core.ports import LeaderElector, Releaser, Source
from controller.core.source_metrics import SourceMetrics
from controller.engine.running import Engine
from controller.engine.verifying import Verifier
from controller.hosts.inventory import AgentHosts, HostsChain
from controller.hosts.reachability import AgentReachability
from controller.journal import open_journal
from controller.journal.counting import CountedJournal
from controller.listeners.draining import DrainingSockets
from controller.listeners.metrics import EngineMetrics
from controller.platforms import PLATFORMS
from controller.plugins import Context, Parts, Runnable
from controller.prometheus import PrometheusClient, PrometheusGauge


@dataclass(frozen=True)
class Assembly:
    engine: Engine
    sources: list[Source]
    hosts: AgentHosts
    metrics: EngineMetrics
    leader: LeaderElector | None = None
    """With a `leader:` section, only the leader runs the engine and the leader-only runnables."""
    runnables: tuple[Runnable, ...] = ()
    """The platforms' loops beside the engine (e.g. the Kubernetes finalizer hold)."""

    @property
    def leading(self) -> bool:
        """Whether this controller acts now (always, without a leader election)."""
        return self.leader is None or self.leader.leading

    async def run(self) -> None:
        """The daemon's work until cancelled: every runnable that may run on any replica, and, while this
        controller leads, the engine with its sources and the leader-only runnables (`drainctl run`)."""
        anywhere = [r.run for r in self.runnables if not r.leader_only]
        leader = self.leader
        if leader is None:
            await _together([self._act, *anywhere])
        else:
            await _together([lambda: leader.lead(self._act), *anywhere])

    async def _act(self) -> None:
        await _together([lambda: self.engine.run(self.sources), *(r.run for r in self.runnables if r.leader_only)])


async def _together(loops: list[Callable[[], Awaitable[None]]]) -> None:
    """Run loops that never end by themselves; one that does (it failed) stops the others and raises."""
    tasks: set[asyncio.Future[None]] = {asyncio.ensure_future(loop()) for loop in loops}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        await _stop(tasks)


async def _stop(tasks: set[asyncio.Future[None]]) -> None:
    """Cancel until every task has ended: a loop that swallowed one cancellation (on Python 3.11,
    `asyncio.wait_for` can) gets another, so a replica that lost its lease really stops acting."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


@asynccontextmanager
async def assemble(
    config: ControllerConfig, *, clock: Clock | None = None, registry: CollectorRegistry | None = None
) -> AsyncIterator[Assembly]:
    async with AsyncExitStack() as stack:
        registry = registry if registry is not None else CollectorRegistry()
        export_build_info(registry)
        journal = CountedJournal(open_journal(config.journal), registry)
        stack.callback(journal.close)
        targets = {name: (spec.agent_url, spec.agent_token.get_secret_value())
                   for name, spec in config.instances.items()}
        reachability = AgentReachability(registry)
        hosts = AgentHosts(targets, timeout_s=config.agents.timeout_s, reachability=reachability)
        stack.push_async_callback(hosts.aclose)
        gauge = None
        if config.prometheus is not None:
            prometheus = PrometheusClient(config.prometheus.url, timeout_s=config.prometheus.timeout_s)
            stack.callback(prometheus.close)
            gauge = PrometheusGauge(prometheus, config.prometheus)
        metrics = EngineMetrics(registry)
        inventory = Inventory({name: spec.pool for name, spec in config.instances.items()})
        context = Context(
            inventory=inventory, static=frozenset(config.instances), agents=hosts.clients(),
            agent_timeout_s=config.agents.timeout_s, budget=config.budget,
            source_metrics=SourceMetrics(metrics.registry), leader=config.leader,
            agent_reachability=reachability,
        )
        parts = _connect(config, context, stack)
        engine = Engine(
            store=journal,
            hosts=HostsChain(hosts, *(p.hosts for p in parts if p.hosts is not None)),
            verifier=Verifier(gauge),
            releasers=_releasers(parts),
            inventory=inventory,
            slots=lambda pool: config.disruption.slots(pool, inventory.pool_size(pool)),
            budget=config.budget,
            settings=config.engine,
            clock=clock,
            listeners=[metrics],
            manual_enabled=any(p.operator_drains for p in parts),
        )
        stack.push_async_callback(engine.aclose)
        registry.register(DrainingSockets(engine.status))
        yield Assembly(
            engine=engine, sources=[s for p in parts for s in p.sources], hosts=hosts, metrics=metrics,
            leader=_leader(parts), runnables=tuple(r for p in parts for r in p.runnables),
        )


def _connect(config: ControllerConfig, context: Context, stack: AsyncExitStack) -> list[Parts]:
    """Every platform's parts, in registry order; each one's `close` runs when the controller stops."""
    parts = []
    for platform in PLATFORMS:
        contributed = platform.connect(getattr(config.sources, platform.name), context)
        if contributed.close is not None:
            stack.push_async_callback(contributed.close)
        parts.append(contributed)
    return parts


def _releasers(parts: list[Parts]) -> dict[str, Releaser]:
    releasers: dict[str, Releaser] = {}
    for contributed in parts:
        for source, releaser in contributed.releasers.items():
            if source in releasers:
                raise ConfigError(f"two platforms release drains of source {source!r}")
            releasers[source] = releaser
    return releasers


def _leader(parts: list[Parts]) -> LeaderElector | None:
    electors = [p.leader for p in parts if p.leader is not None]
    if len(electors) > 1:
        raise ConfigError("leader: more than one platform offers a leader election; configure one")
    return electors[0] if electors else None
