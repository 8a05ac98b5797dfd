"""The Kubernetes hold and release of `hold: finalizer`: our finalizer on every ready pod, removed on release.

Why a finalizer: while it is on a pod, the pod object cannot disappear from the API server, so no deletion can
complete unseen — not while the controller restarts, not during a watch gap or a leader change. The controller
sees every deletion, drains, verifies, and only then removes the finalizer (`FinalizerRelease`, called by the
reconciler after a verified zero or a completed reset, always before the deadline). It does not stop the kubelet:
the containers still get SIGTERM at once and SIGKILL at deletionTimestamp (see docs/platforms.md).

Both edits are JSON merge patches of `metadata.finalizers` carrying the `resourceVersion` that was read, so a
concurrent change by anyone else is a 409 and never lost: the pod is read again and the patch retried.
`FinalizerHold` also takes our finalizer off a pod still held `overdue_s` after its deadline (never hold forever,
even if the drain's own release was given up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from controller.core.errors import DrainctlError
from controller.core.models import Drain
from controller.platforms.kubernetes.api import Conflict, KubernetesApi, NotFound, Pod
from controller.platforms.kubernetes.directory import PodDirectory

CONFLICT_ATTEMPTS = 5
"""Read-patch rounds before a conflict counts as a temporary error (the reconciler retries it later)."""
log = logging.getLogger("drainctl.platforms.kubernetes.finalizers")


class FinalizerRelease:
    """Release: remove our finalizer from the pod (if it still is the pod of the drain: refs hold its uid)."""

    holds = True

    def __init__(self, api: KubernetesApi, *, namespace: str, finalizer: str) -> None:
        self._api = api
        self._namespace = namespace
        self._finalizer = finalizer

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        for uid in handles:
            removed = await edit_finalizers(self._api, self._namespace, drain.instance, uid, self._finalizer, add=False)
            log.info("%s: finalizer %s %s", drain.instance, self._finalizer, "removed" if removed else "already gone")


class FinalizerHold:
    """Keeps our finalizer on every ready pod that is not being deleted; runs while the controller leads."""

    def __init__(
        self,
        api: KubernetesApi,
        pods: PodDirectory,
        *,
        namespace: str,
        finalizer: str,
        overdue_s: float = 60.0,
        retry_s: float = 2.0,
        idle_s: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._pods = pods
        self._namespace = namespace
        self._finalizer = finalizer
        self._overdue_s = overdue_s
        self._retry_s = retry_s
        self._idle_s = idle_s
        self._clock = clock
        self._wake = asyncio.Event()
        pods.subscribe(lambda _name, _pod: self._wake.set())

    async def run(self) -> None:
        while True:
            self._wake.clear()
            wait_s = await self.pass_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self._wake.wait()

    async def pass_once(self) -> float:
        """Hold every ready pod, let go of overdue ones; how long until the next pass is worth it."""
        failed = False
        for pod in self._pods.pods():
            add = self._needs_hold(pod)
            if not add and not self._overdue(pod):
                continue
            try:
                await edit_finalizers(self._api, self._namespace, pod.name, pod.uid, self._finalizer, add=add)
            except DrainctlError as exc:
                failed = True
                log.warning("%s: cannot %s finalizer %s: %s", pod.name, "add" if add else "remove", self._finalizer,
                            exc)
            else:
                if not add:
                    log.error("%s: still held %.0f s after its deadline; finalizer %s removed", pod.name,
                              self._clock() - (pod.deletion_at or 0.0), self._finalizer)
        return self._retry_s if failed else self._idle_s

    def _needs_hold(self, pod: Pod) -> bool:
        return pod.ready and pod.deletion_at is None and self._finalizer not in pod.finalizers

    def _overdue(self, pod: Pod) -> bool:
        deadline = pod.deletion_at
        return deadline is not None and self._finalizer in pod.finalizers and self._clock() > deadline + self._overdue_s


async def edit_finalizers(api: KubernetesApi, namespace: str, name: str, uid: str, finalizer: str, *,
                          add: bool) -> bool:
    """Add (to a ready pod not being deleted) or remove our finalizer; False when there was nothing to do.

    Read, then merge-patch with the resourceVersion read; on 409 read again. `Conflict` after `CONFLICT_ATTEMPTS`.
    """
    for _attempt in range(CONFLICT_ATTEMPTS):
        try:
            pod = await api.get_pod(namespace, name)
        except NotFound:
            return False
        wanted = _wanted(pod, uid, finalizer, add=add)
        if wanted is None:
            return False
        patch = {"metadata": {"resourceVersion": pod.resource_version, "finalizers": wanted}}
        try:
            await api.patch_pod(namespace, name, patch)
        except Conflict:
            log.debug("%s: the pod changed while its finalizers were edited; reading it again", name)
            continue
        except NotFound:
            return False
        return True
    raise Conflict(f"{name}: finalizers still conflicting after {CONFLICT_ATTEMPTS} attempts")


def _wanted(pod: Pod, uid: str, finalizer: str, *, add: bool) -> list[str] | None:
    """The finalizers the pod should have, or None when it needs no patch (or is another pod by that name)."""
    if pod.uid != uid:
        return None
    if add:
        held = finalizer in pod.finalizers or pod.deletion_at is not None or not pod.ready
        return None if held else [*pod.finalizers, finalizer]
    if finalizer not in pod.finalizers:
        return None
    return [f for f in pod.finalizers if f != finalizer]
