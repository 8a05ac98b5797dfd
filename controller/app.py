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

from controller.balancers.haproxy import HaproxyBalancer
from controller.config import ControllerConfig
from controller.core.build_info import export_build_info
from controller.core.clocks import Clock, SystemClock
from controller.core.errors import ConfigError
from controller.core.inventory import Inventory
from controller.core.ports import Balancer, Journal, LeaderElector, Releaser, Source
from controller.core.source_metrics import SourceMetrics
from controller.engine.rotating import Rotation
from controller.engine.running import Engine
from controller.engine.verifying import Verifier
from controller.hosts.discovering import Awaiting
from controller.hosts.fleet import Fleet
from controller.hosts.inventory import AgentHosts, HostsChain
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability
from controller.journal import open_journal
from controller.journal.counting import CountedJournal
from controller.listeners.draining import DrainingSockets
from controller.listeners.leadership import LeaderMetrics
from controller.listeners.metrics import EngineMetrics
from controller.listeners.webhooks import Cursor, WebhookOutbox, cursor_path
from controller.notifying.sending import DeliveryMetrics, Webhooks
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
    agents: Fleet | None = None
    """The one map of agents (static, discovered, learned from pushes): what the push route learns into."""

    @property
    def leader_url(self) -> str | None:
        """The leader's advertised API, when the elector knows it (the Postgres lease row has it)."""
        url = getattr(self.leader, "leader_url", None)
        return url if isinstance(url, str) else None

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
        journal = CountedJournal(open_journal(config.journal, password_file=config.journal_password_file), registry)
        stack.callback(journal.close)
        targets = {name: (spec.agent_url, spec.agent_token.get_secret_value())
                   for name, spec in config.instances.items()}
        pool = _agent_pool(config)
        stack.push_async_callback(pool.aclose)
        reachability = AgentReachability(registry)
        hosts = AgentHosts(targets, timeout_s=config.agents.timeout_s, pool=pool, reachability=reachability)
        stack.push_async_callback(hosts.aclose)
        gauge = None
        if config.prometheus is not None:
            prometheus = PrometheusClient(config.prometheus.url, timeout_s=config.prometheus.timeout_s)
            stack.callback(prometheus.close)
            gauge = PrometheusGauge(prometheus, config.prometheus)
        metrics = EngineMetrics(registry)
        outbox = _webhooks(config, journal, metrics, stack)
        inventory = Inventory({name: spec.pool for name, spec in config.instances.items()})
        fleet = _fleet(config, inventory, hosts, pool, metrics, reachability)
        stack.push_async_callback(fleet.aclose)
        context = Context(
            inventory=inventory, agents=fleet,
            agent_timeout_s=config.agents.timeout_s, budget=config.budget,
            source_metrics=SourceMetrics(metrics.registry), leader=config.leader, fleet=fleet,
            journal=journal, agent_pool=pool, agent_reachability=reachability,
        )
        parts = _connect(config, context, stack)
        engine = Engine(
            store=journal,
            hosts=HostsChain(fleet, *(p.hosts for p in parts if p.hosts is not None)),
            verifier=Verifier(gauge),
            releasers=_releasers(parts),
            inventory=inventory,
            slots=lambda pool: config.disruption.slots(pool, inventory.pool_size(pool)),
            budget=config.budget,
            settings=config.engine,
            clock=clock,
            listeners=[*([metrics] if outbox is None else [metrics, outbox]), fleet,
                       *(heard for p in parts for heard in p.listeners)],
            manual_enabled=any(p.operator_drains for p in parts),
            rotation=_rotation(config, clock, parts),
        )
        stack.push_async_callback(engine.aclose)
        fleet.busy = lambda name: (drain := engine.get(name)) is not None and not drain.finished
        leader = _leader(parts)
        LeaderMetrics(metrics.registry, leader)
        registry.register(DrainingSockets(engine.status))
        yield Assembly(
            engine=engine, sources=[Awaiting(s, fleet) if fleet.discoveries else s for p in parts for s in p.sources],
            hosts=hosts, metrics=metrics, leader=leader, agents=fleet,
            runnables=(*(r for p in parts for r in p.runnables), *_outbox_runs(outbox)),
        )


def _agent_pool(config: ControllerConfig) -> AgentPool:
    """The one HTTP client of every agent call (`agents:`): CA bundle loaded once, bounded in flight."""
    agents = config.agents
    return AgentPool(max_in_flight=agents.max_in_flight, max_keepalive=agents.max_keepalive,
                     keepalive_s=agents.keepalive_s)


def _fleet(
    config: ControllerConfig, inventory: Inventory, hosts: AgentHosts, pool: AgentPool, metrics: EngineMetrics,
    reachability: AgentReachability,
) -> Fleet:
    """The one map of agents: the static ones, and those the platforms discover and the pushes teach it."""
    agents = config.agents
    token = agents.token.get_secret_value() if agents.token is not None else None
    return Fleet(inventory, hosts.clients(), timeout_s=agents.timeout_s, registry=metrics.registry, pool=pool,
                 reachability=reachability, token=token, learned_ttl_s=agents.learned_ttl_s)


def _webhooks(
    config: ControllerConfig, journal: Journal, metrics: EngineMetrics, stack: AsyncExitStack
) -> WebhookOutbox | None:
    """The webhooks' outbox (`controller/listeners/webhooks.py`), or None without any webhook."""
    if not config.webhooks:
        return None
    webhooks = Webhooks(config.webhooks, DeliveryMetrics(metrics.registry))
    cursors = [Cursor(cursor_path(config.journal, hook)) for hook in config.webhooks]
    outbox = WebhookOutbox(journal, webhooks, cursors)
    stack.push_async_callback(outbox.aclose)
    return outbox


def _outbox_runs(outbox: WebhookOutbox | None) -> tuple[Runnable, ...]:
    return () if outbox is None else (Runnable("webhooks", outbox.run, leader_only=True),)


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


def _rotation(config: ControllerConfig, clock: Clock | None, parts: list[Parts]) -> Rotation | None:
    """The out-of-rotation step, when configured (`rotation:`), with the balancers it can observe: the HAProxy
    of `rotation.haproxy` and those the platforms offer (GCP backend health, Kubernetes EndpointSlices)."""
    if not config.rotation.enabled:
        return None
    section = config.rotation.haproxy
    balancers: list[Balancer] = [] if section is None else [HaproxyBalancer(section.socket, backend=section.backend)]
    balancers += [balancer for p in parts for balancer in p.balancers]
    return Rotation(budget=config.budget, clock=clock or SystemClock(), balancers=balancers,
                    poll_s=config.rotation.poll_s)
