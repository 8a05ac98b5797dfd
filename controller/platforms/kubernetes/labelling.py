"""The Lease holder labels its own pod (`drainctl.io/leader=true`), so a Service selecting that label reaches
only the replica that acts.

Why a label and not readiness: a standby that is never Ready would stall every rolling update (the new
replica never becomes available) and block every node drain (the PodDisruptionBudget counts it as down).
So both replicas stay Ready on `/healthz`, and the Service adds the label to its selector. This is the
pattern of Patroni's `role_label` and kube-arangodb's `role=leader`.

- Leading: the replica sets `true` on its own pod (a merge patch, retried every `retry_s` while it leads),
  then sets `false` on any other pod still labelled `true` (a leader that died or was cut off from the API
  server before it could take its own off).
- Losing the Lease, or stopping: `false` on its own pod, before the Lease is released, so the next leader's
  pod is not selected beside ours (best effort: a replica cut off from the API server cannot, and the next
  leader does it).
- Starting: `false` on its own pod once (a container that restarted in a pod still labelled `true`).

Between a new leader labelling itself and clearing a stale label, a Service may reach both pods for a moment;
the standby then refuses writes with 503 (`not the leader`), which the CLI prints; the stale label is gone
once the new leader's first round is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.core.errors import DrainctlError
from controller.core.ports import Work
from controller.platforms.kubernetes.api import KubernetesApi
from controller.platforms.kubernetes.leases import LeaseElector

log = logging.getLogger("drainctl.platforms.kubernetes.labelling")


@dataclass(frozen=True)
class PodLabel:
    namespace: str
    """Of this controller's pod (the downward API's `metadata.namespace`)."""
    pod: str
    """This controller's pod (the downward API's `metadata.name`)."""
    key: str
    """The label, e.g. `drainctl.io/leader`; its value is "true" on the leader's pod, "false" elsewhere."""
    timeout_s: float
    """Per PATCH, so a hanging API server cannot hold a hand-over."""


class LabelledElector:
    """A `LeaseElector` whose replica's pod label follows its leadership (a LeaderElector itself)."""

    def __init__(self, elector: LeaseElector, api: KubernetesApi, label: PodLabel) -> None:
        self.elector = elector
        self._api = api
        self.label = label
        self._started: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self.elector.leading

    async def lead(self, work: Work) -> None:
        """As `LeaseElector.lead`, marking this replica's pod `false` first and `true` while it leads."""
        self._started = asyncio.create_task(self._quietly(False), name="leader-label-start")
        try:
            await self.elector.lead(functools.partial(self._labelled, work))
        finally:
            await _finish(self._started)

    async def mark(self, leading: bool, pod: str | None = None) -> None:
        """Set the label on `pod` (default: ours); our errors when the API server refuses or is unreachable."""
        label = self.label
        patch = {"metadata": {"labels": {label.key: "true" if leading else "false"}}}
        await self._api.patch_pod(label.namespace, pod or label.pod, patch, timeout_s=label.timeout_s)

    async def clear_others(self) -> list[str]:
        """`false` on every other pod labelled `true`; the pods it changed."""
        label = self.label
        listed = await self._api.list_pods(label.namespace, f"{label.key}=true", timeout_s=label.timeout_s)
        stale = [pod.name for pod in listed.pods if pod.name != label.pod]
        for name in stale:
            await self.mark(False, name)
            log.info("leader: took %s=true off pod %s (not the leader)", label.key, name)
        return stale

    async def _labelled(self, work: Work) -> None:
        """`work`, with our pod labelled while it runs; the label taken off before the Lease is released."""
        if self._started is not None:
            await _finish(self._started)  # its `false` must not land after our `true`
        stop = asyncio.Event()
        keeping = asyncio.create_task(self._keep_labelled(stop), name="leader-label")
        try:
            await work()
        finally:
            stop.set()
            await _finish(keeping)  # a PATCH in flight ends (its timeout) before the `false` below
            await self._quietly(False)

    async def _keep_labelled(self, stop: asyncio.Event) -> None:
        """Until both are done or `stop`: our label `true`, then stale ones cleared; retried every renew."""
        steps: list[Callable[[], Awaitable[object]]] = [functools.partial(self.mark, True), self.clear_others]
        while steps and not stop.is_set():
            try:
                await steps[0]()
                steps.pop(0)
                continue
            except DrainctlError as exc:
                log.warning("leader: cannot label pod %s (retrying): %s", self.label.pod, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.elector.settings.renew_s)

    async def _quietly(self, leading: bool) -> None:
        try:
            await self.mark(leading)
        except DrainctlError as exc:
            log.warning("leader: cannot set %s on pod %s: %s", self.label.key, self.label.pod, exc)


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for `task` to end (it ends by itself within its PATCH timeout), whatever it raised."""
    with contextlib.suppress(Exception):
        await asyncio.shield(task)
