"""A Service's EndpointSlices as a `Balancer`: whether the Service still sends new connections to a pod.

The drain's out-of-rotation step (controller/engine/rotating.py) asks this instead of waiting the budget's whole
`lb_deregistration_s`. A look lists the `discovery.k8s.io/v1` EndpointSlices of the configured Service (label
`kubernetes.io/service-name`); each endpoint names its pod (`targetRef`) and carries `conditions`: `ready`
(the pod's Ready condition, never true while the pod terminates), `serving` and `terminating`. A pod is still
routed while its endpoint is ready in some slice (an absent `ready` means ready, as the API documents); it is out
once it is not ready, or gone, in every slice. So a pod the kubelet saw fail its readiness probe is out, and a
pod being deleted (its endpoint turns terminating, not ready, at once) is out at the first look: the drain does
not wait twice (issue 15 item 3). `serving` (a terminating pod still passing its probe) is not routing:
kube-proxy sends terminating endpoints traffic only when a Service has no ready endpoint left.

Lists, not a watch: the question is asked only during a drain's out-of-rotation step, at most once per
`interval_s`, so the Role grants `list` on endpointslices and nothing more (deploy/kubernetes/rbac.yaml).
Failures are handled by `controller/balancers/observing.py` ("cannot tell", logged once, the timer decides).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from controller.balancers.observing import Observed
from controller.platforms.kubernetes.api import Malformed


class SliceReader(Protocol):
    async def list_endpoint_slices(self, namespace: str, service: str, *,
                                   timeout_s: float | None = None) -> list[Any]: ...


class ServiceEndpoints:
    """One look: the pods of one Service's EndpointSlices, and whether any slice has the pod's endpoint ready."""

    def __init__(self, api: SliceReader, *, namespace: str, service: str, timeout_s: float = 2.0) -> None:
        self.name = f"kubernetes service {namespace}/{service}"
        self._api = api
        self._namespace = namespace
        self._service = service
        self._timeout_s = timeout_s

    async def look(self) -> Mapping[str, bool]:
        routed: dict[str, bool] = {}
        for piece in await self._api.list_endpoint_slices(self._namespace, self._service, timeout_s=self._timeout_s):
            for pod, ready in _endpoints(piece):
                routed[pod] = routed.get(pod, False) or ready
        return routed

    def balancer(self, *, interval_s: float) -> Observed:
        return Observed(self.name, self.look, interval_s=interval_s)


def _endpoints(piece: Any) -> list[tuple[str, bool]]:
    """(pod name, ready) of every endpoint of one slice that names a pod."""
    endpoints = piece.get("endpoints") if isinstance(piece, dict) else None
    if endpoints is None:
        return []  # a Service without endpoints has slices with `endpoints: null`
    if not isinstance(endpoints, list):
        raise Malformed("kubernetes: an EndpointSlice's endpoints is not a list")
    found = []
    for endpoint in endpoints:
        target = endpoint.get("targetRef") if isinstance(endpoint, dict) else None
        if isinstance(target, dict) and target.get("kind") == "Pod" and isinstance(target.get("name"), str):
            conditions = endpoint.get("conditions") or {}
            found.append((target["name"], conditions.get("ready") is not False))
    return found
