"""Kubernetes Events on a pod at drain start and end, so `kubectl describe pod` shows what drainctl did to it.

The moments are the webhooks' (`controller/listeners/webhooks.py`: `event_of`), and so is the message (the
notification's one-line `text`):

    drain.started                 DrainStarted   Normal
    drain.ended, outcome graceful DrainEnded     Normal
    drain.ended, outcome forced   DrainForced    Warning
    drain.ended, outcome failed   DrainFailed    Warning

An `AsyncListener`: the engine only queues announcements into its bounded mailbox (`engine/announcing.py`), so
posting never runs in a decide-and-write step. Events are best effort, as Kubernetes' own are: a post that
fails is logged (once per kind of error, at debug level after that) and dropped, never retried; the journal and
the webhooks stay the record. Only drains of pods this platform watches get an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from controller.core.announcements import Announcement, Journaled
from controller.core.errors import PermanentError, TemporaryError
from controller.core.models import Drain, Transition
from controller.listeners.webhooks import event_of, notification
from controller.notifying.bodies import EventKind
from controller.platforms.kubernetes.api import KubernetesApi, rfc3339
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.watching import SOURCE

log = logging.getLogger("drainctl.platforms.kubernetes.events")

COMPONENT = "drainctl"
"""`source.component` and `reportingComponent` of every event."""

REASONS = {"graceful": ("DrainEnded", "Normal"), "forced": ("DrainForced", "Warning"),
           "failed": ("DrainFailed", "Warning")}
"""The reason and type of a drain's end, by outcome."""


def reason_of(event: EventKind, outcome: str | None) -> tuple[str, str]:
    """(reason, type) of a notification's moment."""
    if event is EventKind.DRAIN_STARTED:
        return "DrainStarted", "Normal"
    return REASONS.get(outcome or "failed", ("DrainEnded", "Normal"))


def event_body(line: Transition, drain: Drain, *, namespace: str, uid: str | None, at_s: float,
               instance: str) -> dict[str, Any] | None:
    """The core/v1 Event of a journal line on the pod `line.instance`, or None if the line is no moment."""
    moment = event_of(line)
    if moment is None:
        return None
    told = notification(line, moment, drain)
    reason, kind = reason_of(moment, told.outcome)
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "name": line.instance, "namespace": namespace}
    if uid:
        involved["uid"] = uid
    stamp = rfc3339(at_s)
    return {
        "apiVersion": "v1", "kind": "Event",
        # client-go's recorder names events `<object>.<unix nanoseconds, hex>`: unique without a read
        "metadata": {"name": f"{line.instance}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": involved, "reason": reason, "type": kind, "message": told.text,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": instance,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class PodEvents:
    """The listener: one Event per drain moment of a watched pod, posted from its own mailbox task."""

    def __init__(self, api: KubernetesApi, pods: PodDirectory, *, namespace: str, instance: str,
                 clock: Callable[[], float] = time.time) -> None:
        self._api = api
        self._pods = pods
        self._namespace = namespace
        self._instance = instance
        self._clock = clock
        self._failed: set[str] = set()

    async def hear(self, announcement: Announcement) -> None:
        if not isinstance(announcement, Journaled) or event_of(announcement.line) is None:
            return
        drain, line = announcement.after, announcement.line
        uid = self._uid(drain)
        if uid is None:
            return
        body = event_body(line, drain, namespace=self._namespace, uid=uid, at_s=self._clock(),
                          instance=self._instance)
        if body is None:
            return
        try:
            await self._api.create_event(self._namespace, body)
        except (TemporaryError, PermanentError) as exc:
            self._complain(body["reason"], exc)

    def _uid(self, drain: Drain) -> str | None:
        """The pod's uid ("" when a pod of ours is no longer listed); None: not a pod this platform watches."""
        pod = self._pods.get(drain.instance)
        if pod is not None:
            return pod.uid
        if drain.source == SOURCE:
            uids = drain.handles(SOURCE)
            return uids[0] if uids else ""
        return None

    def _complain(self, reason: str, exc: Exception) -> None:
        kind = type(exc).__name__
        if kind in self._failed:
            log.debug("kubernetes: event %s not posted (%s); dropped", reason, exc)
            return
        self._failed.add(kind)
        log.warning("kubernetes: event %s not posted (%s); dropped: events are best effort (not logged again "
                    "for this error)", reason, exc)
