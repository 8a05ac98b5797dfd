"""Wiring of the Kubernetes parts from controller.yaml (`sources.kubernetes`, `leader`), used by `assembly`.

One API client serves the source (list+watch), the hold and release (finalizer patches) and the Lease. The
watched pods (`PodDirectory`) are the inventory: each pod joins the engine's inventory in the configured pool
when first seen and leaves it when gone; its host is the agent sidecar at the pod IP.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from controller.actions.finalizers import FinalizerHold, FinalizerRelease
from controller.actions.pods import PodHosts, PreStopRelease
from controller.actions.release import Releaser
from controller.clients import kubernetes as kubernetes_client
from controller.clients.kubernetes import Pod
from controller.clients.pods import PodDirectory
from controller.config import ControllerConfig
from controller.engine.running import Engine
from controller.leader import LeaseElector, LeaseSettings
from controller.sources import kubernetes as kubernetes_source
from controller.sources.metrics import SourceMetrics


class KubernetesParts:
    def __init__(self, config: ControllerConfig, api: kubernetes_client.KubernetesApi, identity: str) -> None:
        kube = self.settings = config.sources.kubernetes
        self.config = config
        self.api = api
        self.identity = identity
        self.pods = PodDirectory()
        token = kube.agent_token.get_secret_value() if kube.agent_token is not None else ""
        self.hosts = PodHosts(self.pods, agent_port=kube.agent_port, token=token, timeout_s=config.agents.timeout_s)
        self.releaser: Releaser
        self.background: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = ()
        if kube.hold == "finalizer":
            self.releaser = FinalizerRelease(api, namespace=kube.namespace, finalizer=kube.finalizer)
            hold = FinalizerHold(api, self.pods, namespace=kube.namespace, finalizer=kube.finalizer,
                                 overdue_s=kube.overdue_s)
            self.background = (hold.run,)
        else:
            self.releaser = PreStopRelease(self.hosts)
        self.elector: LeaseElector | None = None
        if config.leader is not None:
            lead = config.leader
            settings = LeaseSettings(namespace=lead.namespace, name=lead.name, identity=identity,
                                     lease_duration_s=lead.lease_duration_s, renew_s=lead.renew_s)
            self.elector = LeaseElector(api, settings)

    @classmethod
    def connect(cls, config: ControllerConfig) -> KubernetesParts | None:
        """None when neither the Kubernetes source nor a Lease is configured; `ConfigError` if no API server."""
        if not config.sources.kubernetes.enabled and config.leader is None:
            return None
        identity = config.leader.identity if config.leader is not None else None
        identity = identity or f"{socket.gethostname()}-{secrets.token_hex(4)}"
        kube = config.sources.kubernetes
        api = kubernetes_client.connect(kube.api_url, user_agent=f"drainctl/{identity}",
                                        request_timeout_s=kube.request_timeout_s)
        return cls(config, api, identity)

    @property
    def watching(self) -> bool:
        """The pod source is enabled (a Lease alone does not watch pods)."""
        return self.settings.enabled

    def source(self, metrics: SourceMetrics) -> kubernetes_source.KubernetesSource:
        kube = self.settings
        return kubernetes_source.KubernetesSource(
            self.api, self.pods, namespace=kube.namespace, label_selector=kube.label_selector,
            finalizer=kube.finalizer, metrics=metrics.of(kubernetes_source.SOURCE),
            watch_timeout_s=kube.watch_timeout_s, retry_max_s=kube.retry_max_s,
        )

    def track(self, engine: Engine) -> None:
        """Pods join the engine's inventory (in the source's pool) as they are seen, and leave when gone.

        A pod named like a static instance of the config stays that instance (the config wins).
        """
        static, pool = self.config.instances, self.settings.pool

        def changed(name: str, pod: Pod | None) -> None:
            if name in static:
                return
            if pod is None:
                engine.inventory.pop(name, None)
            else:
                engine.inventory.setdefault(name, pool)

        self.pods.subscribe(changed)

    def slots(self, pool: str) -> int:
        """The disruption budget; a percentage of the pods' pool counts the pods seen now."""
        budget = self.config.disruption.pools.get(pool)
        if budget is None or pool != self.settings.pool:
            return self.config.slots(pool)
        return budget.slots(len(self.pods) + sum(1 for s in self.config.instances.values() if s.pool == pool))

    async def aclose(self) -> None:
        await self.hosts.aclose()
        self.api.close()
