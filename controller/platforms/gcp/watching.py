"""The GCP source: managed instances of regional MIGs that the group is about to take away, seen by polling.

Every `poll_interval_s` it lists the managed instances (`listManagedInstances`, paginated) of each MIG named in
config or selected by label (`selecting.py`, asked before every round).
An instance whose `currentAction` is DELETING, RECREATING, ABANDONING, RESTARTING, REFRESHING, STOPPING or
SUSPENDING, or whose `instanceStatus` is PENDING_STOP (graceful shutdown under way), becomes one
`LifecycleEvent`: instance = the instance's name (the last segment of its URL), kind from the action,
`not_after` = the end of its graceful-shutdown window (`shutdownDetails.requestTimestamp + maxDuration`), or,
without shutdownDetails, the configured window counted from when this source first saw the action.

The event is deterministic: `ref` is `<instance id or name>/<action>/<requestTimestamp or first-seen time>`, and
the source remembers the first-seen time while the action lasts, so polling the same action again yields the same
event (emitted once). The ref is also the notice id the GCP release hands to the instance's agent.

Malformed instances are logged and skipped; a failed or malformed list of one MIG is logged, counted and
polled again next round (after a backoff that honours Retry-After); the loop never ends by itself. Unknown
`currentAction` values are logged once each and treated as "nothing to drain".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.models import EventKind, LifecycleEvent
from controller.core.retrying import backoff_s
from controller.core.source_metrics import SourceCounters
from controller.platforms.gcp.compute import ComputeMalformed
from controller.platforms.gcp.selecting import Group, Selection, selection

__all__ = ["ACTIONS", "GcpSource", "Group", "Observed", "kind_of", "observe", "to_event"]

SOURCE = "gcp"
log = logging.getLogger("drainctl.platforms.gcp.watching")

ACTIONS: dict[str, EventKind] = {
    "DELETING": EventKind.TERMINATE,
    "ABANDONING": EventKind.TERMINATE,
    "RECREATING": EventKind.REDEPLOY,
    "RESTARTING": EventKind.REBOOT,
    "REFRESHING": EventKind.REBOOT,
    "STOPPING": EventKind.STOP,
    "SUSPENDING": EventKind.STOP,
}
"""currentAction values that take the instance (or its sockets) away, and the event kind each becomes."""
QUIET_ACTIONS = frozenset({"NONE", "CREATING", "CREATING_WITHOUT_RETRIES", "VERIFYING"})
"""currentAction values that leave a running instance alone."""
PENDING_STOP = "PENDING_STOP"


class ManagedInstanceLister(Protocol):
    async def list_managed_instances(self, region: str, mig: str) -> Any:
        """An object with `items`: the raw managed instances of one MIG."""
        ...


@dataclass(frozen=True)
class Observed:
    """The parts of a managed instance this source uses."""

    name: str
    ident: str
    action: str
    status: str
    requested_at: float | None
    """shutdownDetails.requestTimestamp, unix seconds."""
    max_duration_s: float | None
    """shutdownDetails.maxDuration, seconds."""


class MalformedInstance(ValueError):
    pass


def observe(raw: Any) -> Observed:
    """Parse one managed instance; `MalformedInstance` says what is wrong with it."""
    if not isinstance(raw, dict):
        raise MalformedInstance(f"a managed instance is a {type(raw).__name__}, not an object")
    url = raw.get("instance")
    if not isinstance(url, str) or not url.rstrip("/"):
        raise MalformedInstance(f"managed instance without an instance URL: {str(raw)[:120]}")
    name = url.rstrip("/").rsplit("/", 1)[-1]
    action, status = raw.get("currentAction", "NONE"), raw.get("instanceStatus", "")
    if not isinstance(action, str) or not isinstance(status, str):
        raise MalformedInstance(f"{name}: currentAction/instanceStatus are not strings")
    ident = raw.get("id")
    requested_at, max_duration_s = _shutdown(name, raw.get("shutdownDetails"))
    return Observed(name, str(ident) if isinstance(ident, str | int) and ident else name, action, status,
                    requested_at, max_duration_s)


def _shutdown(name: str, details: Any) -> tuple[float | None, float | None]:
    if details is None:
        return None, None
    if not isinstance(details, dict):
        raise MalformedInstance(f"{name}: shutdownDetails is not an object")
    requested, duration = details.get("requestTimestamp"), details.get("maxDuration")
    try:
        requested_at = datetime.fromisoformat(requested).timestamp() if requested is not None else None
        seconds = duration.get("seconds", 0) if isinstance(duration, dict) else None
        nanos = duration.get("nanos", 0) if isinstance(duration, dict) else 0
        max_s = float(seconds) + float(nanos) / 1e9 if seconds is not None else None
    except (TypeError, ValueError) as exc:
        raise MalformedInstance(f"{name}: unusable shutdownDetails {details!r}: {exc}") from exc
    if max_s is not None and not max_s > 0:
        raise MalformedInstance(f"{name}: shutdownDetails.maxDuration must be positive, got {max_s!r}")
    return requested_at, max_s


def kind_of(observed: Observed) -> EventKind | None:
    """The event kind, or None when the instance is not going anywhere."""
    kind = ACTIONS.get(observed.action)
    if kind is None and observed.status == PENDING_STOP:
        return EventKind.STOP
    return kind


class GcpSource:
    name = SOURCE

    def __init__(
        self,
        api: ManagedInstanceLister,
        groups: Sequence[Group] | Selection,
        *,
        metrics: SourceCounters,
        poll_interval_s: float,
        window_s: float,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`groups`: the MIGs named in config, or a selection (by label) asked before every round."""
        self._api = api
        self._groups = selection(groups)
        self._selection_failures = 0
        self._metrics = metrics
        self._poll_interval_s = poll_interval_s
        self._window_s = window_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._first_seen: dict[Group, dict[tuple[str, str], float]] = {}
        """Per MIG, (instance id, action) -> when this source first saw it (forgotten once the action is over)."""
        self._emitted: set[str] = set()
        self._unknown: set[str] = set()
        self._malformed: set[str] = set()
        self._failures: dict[Group, int] = {}

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        while True:
            events, delay_s = await self.poll()
            for event in events:
                yield event
            await asyncio.sleep(delay_s)

    async def poll(self) -> tuple[list[LifecycleEvent], float]:
        """One round over every MIG: the events not emitted before, and how long to wait for the next round."""
        events: list[LifecycleEvent] = []
        delay_s = self._poll_interval_s
        try:
            groups = await self._groups.groups()
            self._selection_failures = 0
        except DrainctlError as exc:
            return [], self._selection_failed(exc)
        for group in groups:
            try:
                events += self._see(group, await self._list(group))
                self._failures.pop(group, None)
            except DrainctlError as exc:
                delay_s = max(delay_s, self._failed(group, exc))
        return events, delay_s

    async def _list(self, group: Group) -> list[Any]:
        self._metrics.polled()
        listing = await self._api.list_managed_instances(group.region, group.name)
        self._metrics.succeeded()
        items: list[Any] = listing.items
        return items

    def _failed(self, group: Group, exc: DrainctlError) -> float:
        failures = self._failures[group] = self._failures.get(group, 0) + 1
        self._metrics.failed(_kind(exc))
        hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
        delay_s = backoff_s(failures, initial_s=self._poll_interval_s, max_s=self._retry_max_s, hint_s=hint_s)
        log.warning("gcp source: %s: %s; polling again in %.1f s", group, exc, delay_s)
        return delay_s

    def _selection_failed(self, exc: DrainctlError) -> float:
        """No group found yet and the selection failed: nothing to poll; try again after a backoff."""
        self._selection_failures += 1
        self._metrics.failed(_kind(exc))
        hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
        delay_s = backoff_s(self._selection_failures, initial_s=self._poll_interval_s, max_s=self._retry_max_s,
                            hint_s=hint_s)
        log.warning("gcp source: %s: %s; trying again in %.1f s", self._groups, exc, delay_s)
        return delay_s

    def _see(self, group: Group, items: list[Any]) -> list[LifecycleEvent]:
        now = self._clock()
        current: set[tuple[str, str]] = set()
        fresh: list[LifecycleEvent] = []
        for raw in items:
            try:
                observed = observe(raw)
            except MalformedInstance as exc:
                self._metrics.failed("malformed")
                if str(exc) not in self._malformed:  # logged once each; the metric counts every time
                    self._malformed.add(str(exc))
                    log.warning("gcp source: %s: skipped a malformed managed instance: %s", group, exc)
                continue
            event = self._event(group, observed, now, current)
            if event is not None and event.id not in self._emitted:
                self._emitted.add(event.id)
                self._metrics.emitted()
                log.info("gcp source: %s: %s is %s/%s; must be released in %.0f s", group, observed.name,
                         observed.action, observed.status, event.not_after - now)
                fresh.append(event)
        seen = self._first_seen.get(group, {})
        self._first_seen[group] = {key: at for key, at in seen.items() if key in current}
        return fresh

    def _event(
        self, group: Group, observed: Observed, now: float, current: set[tuple[str, str]]
    ) -> LifecycleEvent | None:
        kind = kind_of(observed)
        if kind is None:
            if observed.action not in QUIET_ACTIONS and observed.action not in self._unknown:
                self._unknown.add(observed.action)
                self._metrics.failed("unknown_action")
                log.warning("gcp source: unknown currentAction %r (instance %s); not draining for it",
                            observed.action, observed.name)
            return None
        key = (observed.ident, observed.action if observed.action in ACTIONS else PENDING_STOP)
        current.add(key)
        first_seen = self._first_seen.setdefault(group, {}).setdefault(key, now)
        return to_event(observed, kind, first_seen=first_seen, window_s=self._window_s)


def _kind(exc: DrainctlError) -> str:
    """The metric label of a failed list."""
    if isinstance(exc, ComputeMalformed):
        return "malformed"
    return "refused" if isinstance(exc, PermanentError) else "unavailable"


def to_event(observed: Observed, kind: EventKind, *, first_seen: float, window_s: float) -> LifecycleEvent:
    """The lifecycle event of one managed instance being taken away (deterministic, see the module doc)."""
    if observed.requested_at is not None and observed.max_duration_s is not None:
        anchor, not_after = observed.requested_at, observed.requested_at + observed.max_duration_s
    else:
        anchor, not_after = first_seen, first_seen + window_s
    action = observed.action if observed.action in ACTIONS else PENDING_STOP
    ref = f"{observed.ident}/{action}/{anchor:.3f}"
    return LifecycleEvent.create(instance=observed.name, kind=kind, not_after=not_after, source=SOURCE, ref=ref)
