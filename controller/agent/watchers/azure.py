"""Azure Scheduled Events on the host: read them every second, turn this VM's into notices, approve once drained.

Reading: `GET {imds}/metadata/scheduledevents?api-version=2020-07-01` with `Metadata: true` about once a second
(the first call also enables the service). A document whose `DocumentIncarnation` was already handled is
skipped; each `EventId` is handled once (the notice book, kept on disk, remembers it across restarts). Only
events whose `Resources` name this VM count. Terminate, Preempt, Reboot and Redeploy become notices whose
`not_after` is the event's `NotBefore` (RFC 1123; a Started event has none: the platform goes ahead now);
Freeze is reported (log, metric) and drained only with `drain_on_freeze`. Unknown types and malformed events
are logged and skipped; a failed or malformed read is logged, counted, and read again after a pause.

Naming: events list VMs by their Azure name (`<scale set>_<instance id>` in a scale set), not the host name. Without
`resource_name` in the config the watcher asks IMDS once at start (`GET {imds}/metadata/instance/compute?api-version=
2021-02-01`, its `name`), retrying a temporary failure with backoff; an IMDS that refuses (4xx: not Azure, an old
fake) leaves the agent's `instance` as the name, with a warning.

Approving: `AzureRelease` is the agent's `PlatformRelease`: when a notice from Azure is released (by the
controller through the agent's API, or by the agent's own fallback), it posts
`{"StartRequests": [{"EventId": ...}]}`. The book releases a notice once, so StartRequests goes out once per
EventId; the fallback releases before `not_after` (NotBefore) whatever happened to the drain.

Errors at this boundary: `ImdsUnavailable` (TemporaryError: connection, timeout, 429/5xx with Retry-After),
`ImdsMalformed` (TemporaryError: a body that is not the documented JSON), `ImdsRefused` (PermanentError: 4xx).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from controller.agent.notices import Notice
from controller.agent.watchers.common import WatchCounters
from controller.core.clocks import SleepingClock, SystemClock
from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.http import HttpErrors, async_client, send
from controller.core.retrying import backoff_s

SOURCE = "azure"
API_VERSION = "2020-07-01"
PATH = "/metadata/scheduledevents"
COMPUTE_PATH = "/metadata/instance/compute"
COMPUTE_API_VERSION = "2021-02-01"
log = logging.getLogger("drainctl.agent.watchers.azure")

KINDS = {"Terminate": "terminate", "Preempt": "preempt", "Reboot": "reboot", "Redeploy": "redeploy"}
"""Event types that take the VM (or its sockets) away, and the notice kind each becomes."""
FREEZE = "Freeze"


class ImdsUnavailable(TemporaryError):
    pass


class ImdsMalformed(TemporaryError):
    pass


class ImdsRefused(PermanentError):
    pass


class MalformedEvent(ValueError):
    pass


@dataclass(frozen=True)
class ScheduledEvent:
    event_id: str
    event_type: str
    resources: tuple[str, ...]
    status: str
    not_before: float | None
    """Unix seconds; None for a Started event (NotBefore is empty then)."""


@dataclass(frozen=True)
class Document:
    incarnation: int
    events: list[Any]


def parse_event(raw: Any) -> ScheduledEvent:
    if not isinstance(raw, dict):
        raise MalformedEvent(f"an event is a {type(raw).__name__}, not an object")
    ident, kind, resources = raw.get("EventId"), raw.get("EventType"), raw.get("Resources")
    if not isinstance(ident, str) or not ident or not isinstance(kind, str):
        raise MalformedEvent(f"event without EventId/EventType: {str(raw)[:160]}")
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise MalformedEvent(f"event {ident}: Resources is not a list of names")
    return ScheduledEvent(ident, kind, tuple(resources), str(raw.get("EventStatus", "")),
                          not_before(raw.get("NotBefore"), ident))


def not_before(text: Any, ident: str = "?") -> float | None:
    """NotBefore (RFC 1123, e.g. `Mon, 19 Sep 2016 18:29:47 GMT`) as unix seconds; None when empty."""
    if text in (None, ""):
        return None
    if not isinstance(text, str):
        raise MalformedEvent(f"event {ident}: NotBefore is not a string")
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"event {ident}: unreadable NotBefore {text!r}") from exc


class ScheduledEventsClient:
    def __init__(self, imds_url: str, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self._http = async_client(base_url=imds_url, timeout=timeout_s, headers={"Metadata": "true"},
                                  transport=transport)

    async def document(self) -> Document:
        body = _ERRORS.json_object(await self._call("GET"), f"GET {PATH}")
        incarnation, events = body.get("DocumentIncarnation"), body.get("Events", [])
        if not isinstance(incarnation, int) or not isinstance(events, list):
            raise ImdsMalformed("scheduled events: DocumentIncarnation or Events missing or of the wrong type")
        return Document(incarnation, events)

    async def vm_name(self) -> str:
        """This VM's name as Azure knows it (instance metadata `compute.name`)."""
        where = f"GET {COMPUTE_PATH}"
        response = await send(self._http, _ERRORS, "GET", COMPUTE_PATH, params={"api-version": COMPUTE_API_VERSION})
        name = _ERRORS.json_object(response, where).get("name")
        if not isinstance(name, str) or not name:
            raise ImdsMalformed(f"{where}: no `name` in the instance metadata")
        return name

    async def approve(self, event_id: str) -> None:
        await self._call("POST", json={"StartRequests": [{"EventId": event_id}]})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, *, json: Any = None) -> httpx.Response:
        return await send(self._http, _ERRORS, method, PATH, params={"api-version": API_VERSION}, json=json)


_ERRORS = HttpErrors("IMDS", timeout=ImdsUnavailable, unreachable=ImdsUnavailable, unavailable=ImdsUnavailable,
                     credentials=ImdsRefused, refused=ImdsRefused, malformed=ImdsMalformed)


class AzureRelease:
    """The agent's `PlatformRelease` on Azure: approve the notice's event (notices from elsewhere need nothing).

    An IMDS 5xx/429 or timeout is retried here with backoff (Retry-After honoured) for `retry_for_s`, never past
    NotBefore, so one blip does not cost a round trip to the caller (issue 9, case 2); after that it is raised,
    and the caller (the controller through the agent's 503, or the fallback) retries until its deadline."""

    def __init__(
        self, client: ScheduledEventsClient, *, clock: SleepingClock | None = None, retry_for_s: float = 2.0
    ) -> None:
        """`retry_for_s`: kept below the controller's agent-call timeout, so its call is answered, not cut."""
        self._client = client
        self._clock: SleepingClock = clock or SystemClock()
        self._retry_for_s = retry_for_s

    async def release(self, notice: Notice) -> None:
        """Approve the event; a refusal (the event is gone, already started) is logged: Azure goes ahead at
        NotBefore by itself, so there is nothing left to hold. Temporary failures are retried, then raised."""
        if notice.source != SOURCE:
            return
        try:
            await self._approve(notice)
        except ImdsRefused as exc:
            log.error("scheduled event %s: approval refused (%s); Azure proceeds at NotBefore by itself", notice.id,
                      exc)
            return
        log.info("scheduled event %s approved (StartRequests)", notice.id)

    async def _approve(self, notice: Notice) -> None:
        give_up_at = min(notice.not_after, self._clock.now() + self._retry_for_s)
        attempt = 0
        while True:
            try:
                await self._client.approve(notice.id)
                return
            except TemporaryError as exc:
                attempt += 1
                delay_s = backoff_s(attempt, initial_s=0.25, max_s=1.0, hint_s=exc.delay_s)
                if self._clock.now() + delay_s > give_up_at:
                    raise
                log.warning("scheduled event %s: approval failed (%s); again in %.2f s", notice.id, exc, delay_s)
                await self._clock.sleep(delay_s)


class NoticeTaker(Protocol):
    def add_notice(
        self, notice_id: str, kind: str, not_after: float, *, source: str = "api", grace_s: float | None = None
    ) -> tuple[Notice, bool]: ...


class ScheduledEventsWatcher:
    def __init__(
        self,
        client: ScheduledEventsClient,
        agent: NoticeTaker,
        *,
        resource_name: str | None,
        metrics: WatchCounters,
        fallback_name: str = "",
        poll_s: float = 1.0,
        retry_max_s: float = 10.0,
        drain_on_freeze: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._agent = agent
        self._resource = resource_name or ""
        self._fallback_name = fallback_name
        self._metrics = metrics
        self._poll_s = poll_s
        self._retry_max_s = retry_max_s
        self._drain_on_freeze = drain_on_freeze
        self._clock = clock
        self._incarnation: int | None = None
        self._handled: set[str] = set()
        self._failures = 0
        self._last_error = ""

    async def run(self) -> None:
        if not self._resource:
            self._resource = await self.learn_name()
        log.info("watching Azure scheduled events for %s every %g s", self._resource, self._poll_s)
        while True:
            delay_s = await self.poll_once()
            await asyncio.sleep(delay_s)

    async def learn_name(self) -> str:
        """`compute.name` from IMDS, retried while IMDS fails temporarily; the fallback name if it refuses."""
        failures = 0
        while True:
            try:
                name = await self._client.vm_name()
            except PermanentError as exc:
                log.warning("scheduled events: IMDS gives no VM name (%s); matching events to %r", exc,
                            self._fallback_name)
                return self._fallback_name
            except DrainctlError as exc:
                failures += 1
                hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
                delay_s = backoff_s(failures, initial_s=self._poll_s, max_s=self._retry_max_s, hint_s=hint_s)
                log.warning("scheduled events: cannot read this VM's name (%s); again in %.1f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                continue
            log.info("scheduled events: this VM is %r (IMDS compute.name)", name)
            return name

    async def poll_once(self) -> float:
        """Read the document once and handle what is new; how long to wait before the next read."""
        self._metrics.polled()
        try:
            document = await self._client.document()
        except DrainctlError as exc:
            return self._failed(exc)
        except Exception as exc:  # never let the watcher die: log, count, read again
            log.exception("scheduled events: unexpected failure")
            return self._failed(TemporaryError(str(exc)))
        if self._failures:
            log.info("scheduled events: reading again after %d failures", self._failures)
        self._failures, self._last_error = 0, ""
        self._metrics.succeeded()
        if document.incarnation != self._incarnation:
            self._incarnation = document.incarnation
            for raw in document.events:
                self._handle(raw)
        return self._poll_s

    def _failed(self, exc: DrainctlError) -> float:
        self._failures += 1
        kind = "malformed" if isinstance(exc, ImdsMalformed) else (
            "refused" if isinstance(exc, PermanentError) else "unavailable")
        self._metrics.failed(kind)
        hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
        delay_s = backoff_s(self._failures, initial_s=self._poll_s, max_s=self._retry_max_s, hint_s=hint_s)
        changed, self._last_error = str(exc) != self._last_error, str(exc)
        level = logging.WARNING if changed or self._failures % 30 == 0 else logging.DEBUG
        log.log(level, "scheduled events: %s (failure %d); reading again in %.1f s", exc, self._failures, delay_s)
        return delay_s

    def _handle(self, raw: Any) -> None:
        try:
            event = parse_event(raw)
        except MalformedEvent as exc:
            key = f"malformed:{str(raw)[:200]}"
            if key not in self._handled:
                self._handled.add(key)
                self._metrics.failed("malformed")
                log.warning("scheduled events: skipped a malformed event: %s", exc)
            return
        if self._resource not in event.resources or event.event_id in self._handled:
            return
        self._handled.add(event.event_id)
        self._metrics.saw(event.event_type)
        kind = KINDS.get(event.event_type)
        if kind is None and event.event_type == FREEZE and self._drain_on_freeze:
            kind = "freeze"
        if kind is None:
            self._report(event)
            return
        not_after = event.not_before if event.not_before is not None else self._clock()
        _notice, new = self._agent.add_notice(event.event_id, kind, not_after, source=SOURCE)
        if new:
            log.info("scheduled event %s: %s of %s, %s, NotBefore in %.1f s", event.event_id, event.event_type,
                     self._resource, event.status, not_after - self._clock())

    def _report(self, event: ScheduledEvent) -> None:
        if event.event_type == FREEZE:
            log.warning("scheduled event %s: Freeze of %s (NotBefore in %.1f s): reported, not drained "
                        "(platform.drain_on_freeze is false)", event.event_id, self._resource,
                        (event.not_before or self._clock()) - self._clock())
        else:
            self._metrics.failed("unknown_event")
            log.warning("scheduled event %s: unknown EventType %r; not drained", event.event_id, event.event_type)
