"""Build a running controller from its config: journal, agent clients, Prometheus, releasers, sources.

`drainctl run` (and the end-to-end tests) use this; everything it opens is closed when the block ends.

    async with assemble(load_config(path)) as controller:
        await controller.engine.run(controller.sources)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from controller.actions.hosts import AgentHosts
from controller.actions.release import AgentNoticeRelease, NothingToRelease, Releaser
from controller.actions.verification import PrometheusGauge, Verifier
from controller.clients.prometheus import PrometheusClient
from controller.config import ControllerConfig
from controller.engine.clock import Clock
from controller.engine.metrics import EngineMetrics
from controller.engine.running import Engine
from controller.sources import Source
from controller.sources import local as local_source
from controller.sources import manual as manual_source
from controller.store import Store


@dataclass(frozen=True)
class Assembly:
    engine: Engine
    sources: list[Source]
    hosts: AgentHosts
    metrics: EngineMetrics


@asynccontextmanager
async def assemble(
    config: ControllerConfig, *, clock: Clock | None = None, registry: CollectorRegistry | None = None
) -> AsyncIterator[Assembly]:
    store = Store(config.journal)
    hosts = AgentHosts(config.instances, timeout_s=config.agents.timeout_s)
    prometheus = None
    gauge = None
    if config.prometheus is not None:
        prometheus = PrometheusClient(config.prometheus.url, timeout_s=config.prometheus.timeout_s)
        gauge = PrometheusGauge(prometheus, config.prometheus)
    try:
        releasers: dict[str, Releaser] = {
            local_source.SOURCE: AgentNoticeRelease(hosts.clients()),
            manual_source.SOURCE: NothingToRelease(),
        }
        metrics = EngineMetrics(registry)
        engine = Engine(
            store=store,
            hosts=hosts,
            verifier=Verifier(gauge),
            releasers=releasers,
            inventory={name: spec.pool for name, spec in config.instances.items()},
            slots=config.slots,
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
        yield Assembly(engine=engine, sources=sources, hosts=hosts, metrics=metrics)
    finally:
        await hosts.aclose()
        if prometheus is not None:
            prometheus.close()
        store.close()
