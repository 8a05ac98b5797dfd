"""The Kubernetes parts from controller.yaml's `sources.kubernetes` and `leader` (kind: lease).

One API client serves the source (list+watch), the hold and release (finalizer patches) and the Lease. The
watched pods (`PodDirectory`) are members of the one fleet (`discovering.py`): each pod with an IP joins it in
the configured pool as soon as it is seen and leaves when gone and idle (a pod named like a static instance
stays that instance: the config wins); its agent is the sidecar at the pod IP. A drain's start and end become
Events on its pod (`events.py`). With `endpoints.service`, the out-of-rotation step observes that Service's
EndpointSlices (`endpoints.py`).
With `leader.pod_label`, the Lease holder labels its own pod for the controller's Service (`labelling.py`).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping

from controller.core.errors import ConfigError
from controller.core.ports import Balancer, LeaderElector, Releaser
from controller.platforms.kubernetes import api as kubernetes_client
from controller.platforms.kubernetes import watching as kubernetes_source
from controller.platforms.kubernetes.config import KubernetesSourceConfig, LeaderConfig
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.discovering import PodMembers
from controller.platforms.kubernetes.endpoints import ServiceEndpoints
from controller.platforms.kubernetes.events import PodEvents
from controller.platforms.kubernetes.finalizers import FinalizerHold, FinalizerRelease
from controller.platforms.kubernetes.labelling import LabelledElector, PodLabel
from controller.platforms.kubernetes.leases import LeaseElector, LeaseSettings
from controller.platforms.kubernetes.pods import PreStopRelease
from controller.plugins import Context, Parts, Runnable

POD_NAME_ENV = "DRAINCTL_POD_NAME"
POD_NAMESPACE_ENV = "DRAINCTL_POD_NAMESPACE"


def connect(settings: KubernetesSourceConfig, context: Context) -> Parts:
    """Nothing without the source and a Lease; `ConfigError` when no API server can be found."""
    lease = context.leader if isinstance(context.leader, LeaderConfig) else None
    if not settings.enabled and lease is None:
        return Parts()
    identity = (lease.identity if lease is not None else None) or f"{socket.gethostname()}-{secrets.token_hex(4)}"
    api = kubernetes_client.connect(settings.api_url, user_agent=f"drainctl/{identity}",
                                    request_timeout_s=settings.request_timeout_s)
    elector = None if lease is None else _elector(api, lease, identity, os.environ)
    if not settings.enabled:
        return Parts(leader=elector, close=_closer(api))
    return _watching(settings, context, api, elector, identity)


def _elector(api: kubernetes_client.KubernetesApi, lease: LeaderConfig, identity: str,
             environ: Mapping[str, str]) -> LeaderElector:
    """The Lease elector; with `pod_label`, one that labels this replica's pod (named by the downward API)."""
    elector = LeaseElector(api, LeaseSettings(
        namespace=lease.namespace, name=lease.name, identity=identity,
        lease_duration_s=lease.lease_duration_s, renew_s=lease.renew_s,
    ))
    if lease.pod_label is None:
        return elector
    pod, namespace = environ.get(POD_NAME_ENV, ""), environ.get(POD_NAMESPACE_ENV, "")
    if not pod or not namespace:
        raise ConfigError(f"leader.pod_label: {POD_NAME_ENV} and {POD_NAMESPACE_ENV} must name this "
                          "controller's pod (the downward API; see deploy/kubernetes/deployment.yaml)")
    label = PodLabel(namespace=namespace, pod=pod, key=lease.pod_label, timeout_s=max(0.5, lease.renew_s))
    return LabelledElector(elector, api, label)


def _watching(settings: KubernetesSourceConfig, context: Context, api: kubernetes_client.KubernetesApi,
              elector: LeaderElector | None, identity: str) -> Parts:
    pods = PodDirectory()
    fleet = context.fleet
    if fleet is None:
        raise ConfigError("sources.kubernetes: the pods need the controller's fleet (the composition root's)")
    token = settings.agent_token.get_secret_value() if settings.agent_token is not None else ""
    PodMembers(pods, fleet, pool=settings.pool, agent_port=settings.agent_port, token=token)
    releaser: Releaser
    runnables: tuple[Runnable, ...] = ()
    if settings.hold == "finalizer":
        releaser = FinalizerRelease(api, namespace=settings.namespace, finalizer=settings.finalizer)
        hold = FinalizerHold(api, pods, namespace=settings.namespace, finalizer=settings.finalizer,
                             overdue_s=settings.overdue_s)
        runnables = (Runnable("finalizer-hold", hold.run, leader_only=True),)
    else:
        releaser = PreStopRelease(fleet, pods)
    source = kubernetes_source.KubernetesSource(
        api, pods, namespace=settings.namespace, label_selector=settings.label_selector,
        finalizer=settings.finalizer, metrics=context.source_metrics.of(kubernetes_source.SOURCE),
        watch_timeout_s=settings.watch_timeout_s, retry_max_s=settings.retry_max_s,
    )

    events = PodEvents(api, pods, namespace=settings.namespace, instance=identity)
    return Parts(sources=(source,), releasers={kubernetes_source.SOURCE: releaser}, runnables=runnables,
                 leader=elector, close=_closer(api), listeners=(events,), balancers=_endpoints(settings, api))


def _endpoints(settings: KubernetesSourceConfig, api: kubernetes_client.KubernetesApi) -> tuple[Balancer, ...]:
    """The Service's EndpointSlices, when `endpoints.service` names it (else nothing is observed)."""
    section = settings.endpoints
    if section.service is None:
        return ()
    looks = ServiceEndpoints(api, namespace=settings.namespace, service=section.service, timeout_s=section.timeout_s)
    return (looks.balancer(interval_s=section.interval_s),)


def _closer(api: kubernetes_client.KubernetesApi) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        api.close()

    return close
