"""The Kubernetes source: pods of the API server being deleted, seen by list + watch.

It lists the pods matching the label selector, then watches from the list's resourceVersion with bookmarks
(which move the resourceVersion on while nothing changes). A watch that ends is resumed from the last
resourceVersion; a 410 Gone (as the HTTP status, or as an ERROR event in the stream) means that version is too
old: the source lists again and carries on from the new list. Every pod it sees goes into the `PodDirectory`
(the inventory on Kubernetes); it only observes, never patches.

A pod with `metadata.deletionTimestamp` becomes one `LifecycleEvent`: instance = pod name, `not_after` = the
deletionTimestamp (the API server sets it to the delete request's time plus the grace period, so it already is
the moment the kubelet kills the containers), `ref` = the pod's uid. The id is a hash of uid and deletionTimestamp,
so a relist or a second watch event of the same deletion is the same event (emitted once), while a second delete
with a shorter grace period is a new event that tightens the running drain. Pods that never ran (no IP, not
Running) and carry no finalizer of ours have no sockets and are not worth a drain.

Malformed lines, malformed pods and unknown event types are logged and skipped; any other failure is logged and
the watch is resumed after a backoff. The loop never ends by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from controller.core.errors import DrainctlError
from controller.core.models import EventKind, LifecycleEvent
from controller.core.retrying import backoff_s
from controller.core.source_metrics import SourceCounters
from controller.platforms.kubernetes.api import Gone, KubernetesApi, KubernetesUnavailable, Pod, WatchEvent
from controller.platforms.kubernetes.directory import PodDirectory

SOURCE = "kubernetes"
QUICK_END_S = 1.0
"""A watch that ended sooner than this is resumed after a short pause, not at once."""
log = logging.getLogger("drainctl.platforms.kubernetes.watching")


def to_event(pod: Pod) -> LifecycleEvent:
    """The lifecycle event of a pod being deleted (deterministic: uid + deletionTimestamp)."""
    if pod.deletion_at is None:
        raise ValueError(f"pod {pod.name} is not being deleted")
    return LifecycleEvent.create(
        instance=pod.name, kind=EventKind.TERMINATE, not_after=pod.deletion_at, source=SOURCE, ref=pod.uid
    )


class KubernetesSource:
    name = SOURCE

    def __init__(
        self,
        api: KubernetesApi,
        pods: PodDirectory,
        *,
        namespace: str,
        label_selector: str,
        finalizer: str,
        metrics: SourceCounters,
        watch_timeout_s: float = 300.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self._api = api
        self._pods = pods
        self._namespace = namespace
        self._selector = label_selector
        self._finalizer = finalizer
        self._metrics = metrics
        self._watch_timeout_s = watch_timeout_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self.resource_version: str | None = None
        """Where the next watch starts; None: list first."""
        self._emitted: dict[str, set[str]] = {}
        """Event ids emitted, by pod uid (forgotten when the pod is gone)."""

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        failures = 0
        while True:
            try:
                if self.resource_version is None:
                    for event in await self._relist():
                        yield event
                started = time.monotonic()
                async for event in self._follow():
                    yield event
                failures = 0
                if time.monotonic() - started < QUICK_END_S:  # a server (or proxy) ending every watch at once
                    await asyncio.sleep(self._retry_initial_s)  # must not make us spin
            except Gone as exc:
                failures += 1
                self._metrics.failed("gone")
                log.info("kubernetes source: %s; listing the pods again", exc)
                self.resource_version = None
                if failures > 1:
                    await asyncio.sleep(self._backoff_s(failures - 1))
            except DrainctlError as exc:
                failures += 1
                self._metrics.failed(_kind(exc))
                delay_s = self._backoff_s(failures, hint_s=getattr(exc, "delay_s", None))
                log.warning("kubernetes source: %s; watching again in %.1f s", exc, delay_s)
                await asyncio.sleep(delay_s)

    async def _relist(self) -> list[LifecycleEvent]:
        self._metrics.polled()
        listed = await self._api.list_pods(self._namespace, self._selector)
        for why in listed.skipped:
            self._metrics.failed("malformed")
            log.warning("kubernetes source: skipped a malformed pod in the list: %s", why)
        self._pods.replace_all(listed.pods)
        present = {pod.uid for pod in listed.pods}
        for uid in [uid for uid in self._emitted if uid not in present]:
            del self._emitted[uid]
        self.resource_version = listed.resource_version
        self._metrics.succeeded()
        log.info("kubernetes source: %d pods listed at resourceVersion %s", len(listed.pods), self.resource_version)
        return [event for pod in listed.pods if (event := self._see(pod)) is not None]

    async def _follow(self) -> AsyncIterator[LifecycleEvent]:
        assert self.resource_version is not None
        self._metrics.polled()
        changes = self._api.watch_pods(
            self._namespace, self._selector, resource_version=self.resource_version, timeout_s=self._watch_timeout_s
        )
        async with contextlib.aclosing(changes):
            async for change in changes:
                event = self._take(change)
                if event is not None:
                    yield event

    def _take(self, change: WatchEvent) -> LifecycleEvent | None:
        if change.problem is not None:
            self._metrics.failed("malformed")
            log.warning("kubernetes source: skipped a malformed watch line: %s", change.problem)
            return None
        if change.type == "ERROR":
            if change.code == 410:
                raise Gone(f"the watch from resourceVersion {self.resource_version} expired (410: {change.message})")
            raise KubernetesUnavailable(f"the watch ended with an error ({change.code}: {change.message})")
        if change.type not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
            self._metrics.failed("unknown_event")
            log.warning("kubernetes source: skipped a watch event of unknown type %r", change.type)
            return None
        self.resource_version = change.resource_version or self.resource_version
        self._metrics.succeeded()
        if change.pod is None:
            return None
        if change.type == "DELETED":
            self._pods.remove(change.pod.name, uid=change.pod.uid)
            self._emitted.pop(change.pod.uid, None)
            return None
        return self._see(change.pod)

    def _see(self, pod: Pod) -> LifecycleEvent | None:
        self._pods.put(pod)
        if pod.deletion_at is None or not self._worth_draining(pod):
            return None
        event = to_event(pod)
        seen = self._emitted.setdefault(pod.uid, set())
        if event.id in seen:
            return None
        seen.add(event.id)
        self._metrics.emitted()
        log.info("kubernetes source: pod %s is being deleted; the kubelet kills it at %.3f", pod.name, pod.deletion_at)
        return event

    def _worth_draining(self, pod: Pod) -> bool:
        return self._finalizer in pod.finalizers or (pod.ip is not None and pod.phase == "Running")

    def _backoff_s(self, failures: int, *, hint_s: float | None = None) -> float:
        return backoff_s(failures, initial_s=self._retry_initial_s, max_s=self._retry_max_s, hint_s=hint_s)


def _kind(exc: DrainctlError) -> str:
    """A metric label: Malformed -> malformed, KubernetesUnavailable -> unavailable, Refused -> refused."""
    return type(exc).__name__.removeprefix("Kubernetes").lower()
