"""Build a running controller from its config: journal, agent clients, Prometheus, releasers, sources.

`drainctl run` (and the end-to-end tests) use this; everything it opens is closed when the block ends.

    async with assemble(load_config(path)) as controller:
        await controller.engine.run(controller.sources)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from controller.actions.hosts import AgentHosts, Hosts
from controller.actions.pods import HostsChain
from controller.actions.release import AgentNoticeRelease, NothingToRelease, Releaser
from controller.actions.verification import PrometheusGauge, Verifier
from controller.clients.prometheus import PrometheusClient
from controller.config import ControllerConfig
from controller.engine.clock import Clock
from controller.engine.gcp import GcpParts
from controller.engine.kubernetes import KubernetesParts
from controller.engine.metrics import EngineMetrics
from controller.engine.running import Engine
from controller.leader import LeaseElector
from controller.sources import Source
from controller.sources import gcp as gcp_source
from controller.sources import kubernetes as kubernetes_source
from controller.sources import local as local_source
from controller.sources import manual as manual_source
from controller.sources.metrics import SourceMetrics
from controller.store import Store


@dataclass(frozen=True)
class Assembly:
    engine: Engine
    sources: list[Source]
    hosts: AgentHosts
    metrics: EngineMetrics
    leader: LeaseElector | None = None
    """With `leader:` configured, only the Lease holder runs the engine (`run`)."""
    background: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
    """Loops that act beside the engine (the Kubernetes finalizer hold); like the engine, only while leading."""

    @property
    def leading(self) -> bool:
        """Whether this controller acts now (always, without a leader election)."""
        return self.leader is None or self.leader.leading

    async def run(self) -> None:
        """The daemon's work until cancelled: the engine with its sources and the background loops, and with a
        leader election only while this replica holds the Lease (`drainctl run` calls this)."""
        if self.leader is None:
            await self._act()
        else:
            await self.leader.lead(self._act)

    async def _act(self) -> None:
        tasks = {asyncio.create_task(self.engine.run(self.sources), name="engine")}
        tasks.update(asyncio.create_task(loop(), name="background") for loop in self.background)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # these loops never end by themselves: one that did failed
        finally:
            await _stop(tasks)


async def _stop(tasks: set[asyncio.Task[None]]) -> None:
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
    kube = KubernetesParts.connect(config)  # None without sources.kubernetes and leader
    store = Store(config.journal)
    hosts = AgentHosts(config.instances, timeout_s=config.agents.timeout_s)
    prometheus = None
    gauge = None
    gcp: GcpParts | None = None
    if config.prometheus is not None:
        prometheus = PrometheusClient(config.prometheus.url, timeout_s=config.prometheus.timeout_s)
        gauge = PrometheusGauge(prometheus, config.prometheus)
    try:
        releasers: dict[str, Releaser] = {
            local_source.SOURCE: AgentNoticeRelease(hosts.clients()),
            manual_source.SOURCE: NothingToRelease(),
        }
        gcp = GcpParts.connect(config.sources.gcp, hosts.clients())
        if gcp is not None:
            releasers[gcp_source.SOURCE] = gcp.releaser
        metrics = EngineMetrics(registry)
        source_metrics = SourceMetrics(metrics.registry)
        all_hosts: Hosts = hosts
        if kube is not None and kube.watching:
            releasers[kubernetes_source.SOURCE] = kube.releaser
            all_hosts = HostsChain(hosts, kube.hosts)
        engine = Engine(
            store=store,
            hosts=all_hosts,
            verifier=Verifier(gauge),
            releasers=releasers,
            inventory={name: spec.pool for name, spec in config.instances.items()},
            slots=kube.slots if kube is not None and kube.watching else config.slots,
            budget=config.budget,
            settings=config.engine,
            clock=clock,
            metrics=metrics,
            manual_enabled=config.sources.manual.enabled,
        )
        sources: list[Source] = []
        if config.sources.local.enabled:
            poll_s = config.sources.local.poll_interval_s
            sources.append(local_source.LocalSource(hosts.clients(), poll_interval_s=poll_s))
        if gcp is not None:
            sources.append(gcp.source(source_metrics))
        background: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
        if kube is not None and kube.watching:
            kube.track(engine)
            sources.append(kube.source(source_metrics))
            background = kube.background
        leader = kube.elector if kube is not None else None
        yield Assembly(engine=engine, sources=sources, hosts=hosts, metrics=metrics, leader=leader,
                       background=background)
    finally:
        await hosts.aclose()
        if gcp is not None:
            await gcp.aclose()
        if kube is not None:
            await kube.aclose()
        if prometheus is not None:
            prometheus.close()
        store.close()
