"""GCE guest metadata on the host: preemption and host maintenance notices, seen the moment they change.

Each key is watched with a hanging GET, `{metadata}/computeMetadata/v1/instance/<key>?wait_for_change=true&
last_etag=<E>&timeout_sec=<T>` with `Metadata-Flavor: Google`: the server answers as soon as the value's ETag is
not E (or after T seconds with the same value), so a flip is seen within a round trip, not a poll interval.
The first read has no ETag and answers at once (an agent started on an already preempted VM sees it too).

    preempted           TRUE -> a `preempt` notice, not_after = now + preempted_notice_s (GCE stops it 30 s on)
    maintenance-event   TERMINATE_ON_HOST_MAINTENANCE -> a `stop` notice, not_after = now + maintenance_notice_s;
                        MIGRATE_ON_HOST_MAINTENANCE (live migration, sockets survive) is reported and drained only
                        with `drain_on_migrate`; NONE ends an event; other values are logged and not drained

The notices carry `grace_s` (default 0): the agent's fallback drains at once instead of waiting for a controller
on a 30-60 s notice. The notice id is `gce/<key>/<etag>`, so a restarted agent (its book kept on disk) does not
take the same flip twice. Failed reads (connection refused, 5xx, 429 with Retry-After) are logged, counted and
retried after a pause; malformed values are logged and skipped. The loops never end by themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from controller.agent.watchers.azure import NoticeTaker
from controller.agent.watchers.common import WatchCounters
from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.http import HttpErrors, async_client, send
from controller.core.retrying import backoff_s

SOURCE = "gcp"
PREEMPTED = "preempted"
MAINTENANCE = "maintenance-event"
MIGRATE = "MIGRATE_ON_HOST_MAINTENANCE"
TERMINATE = "TERMINATE_ON_HOST_MAINTENANCE"
log = logging.getLogger("drainctl.agent.watchers.gce")


class MetadataUnavailable(TemporaryError):
    pass


class MetadataRefused(PermanentError):
    pass


@dataclass(frozen=True)
class Reading:
    value: str
    etag: str | None


class MetadataClient:
    def __init__(
        self, metadata_url: str, *, watch_timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self._watch_timeout_s = watch_timeout_s
        self._http = async_client(
            base_url=f"{metadata_url}/computeMetadata/v1/instance", headers={"Metadata-Flavor": "Google"},
            timeout=httpx.Timeout(5.0, read=watch_timeout_s + 10.0), transport=transport,
        )

    async def read(self, key: str, *, last_etag: str | None) -> Reading:
        """The value now (no ETag yet), or once it differs from `last_etag` (or after the watch timeout)."""
        params: dict[str, str | int] = {}
        if last_etag is not None:
            params = {"wait_for_change": "true", "last_etag": last_etag, "timeout_sec": int(self._watch_timeout_s)}
        response = await send(self._http, _ERRORS, "GET", f"/{key}", params=params)
        return Reading(response.text.strip(), response.headers.get("ETag"))

    async def aclose(self) -> None:
        await self._http.aclose()


_ERRORS = HttpErrors("the metadata server", timeout=MetadataUnavailable, unreachable=MetadataUnavailable,
                     unavailable=MetadataUnavailable, credentials=MetadataRefused, refused=MetadataRefused)


class GuestMetadataWatcher:
    def __init__(
        self,
        client: MetadataClient,
        agent: NoticeTaker,
        *,
        metrics: WatchCounters,
        preempted_notice_s: float = 30.0,
        maintenance_notice_s: float = 60.0,
        grace_s: float = 0.0,
        drain_on_migrate: bool = False,
        retry_max_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._agent = agent
        self._metrics = metrics
        self._preempted_notice_s = preempted_notice_s
        self._maintenance_notice_s = maintenance_notice_s
        self._grace_s = grace_s
        self._drain_on_migrate = drain_on_migrate
        self._retry_max_s = retry_max_s
        self._clock = clock

    async def run(self) -> None:
        log.info("watching GCE metadata: %s, %s", PREEMPTED, MAINTENANCE)
        await asyncio.gather(self.watch(PREEMPTED), self.watch(MAINTENANCE))

    async def watch(self, key: str) -> None:
        etag: str | None = None
        failures = 0
        while True:
            self._metrics.polled()
            try:
                reading = await self._client.read(key, last_etag=etag)
            except DrainctlError as exc:
                failures += 1
                await asyncio.sleep(self._failed(key, exc, failures))
                continue
            except Exception as exc:  # never let the watcher die: log, count, read again
                log.exception("metadata: unexpected failure reading %s", key)
                failures += 1
                await asyncio.sleep(self._failed(key, TemporaryError(str(exc)), failures))
                continue
            failures = 0
            self._metrics.succeeded()
            if reading.etag is None:
                self._metrics.failed("malformed")
                log.warning("metadata: %s answered without an ETag; watching it by polling", key)
                await asyncio.sleep(1.0)
            elif reading.etag != etag:
                self.take(key, reading)
            etag = reading.etag

    def take(self, key: str, reading: Reading) -> None:
        """Act on one new value of `key`."""
        value = reading.value
        if key == PREEMPTED:
            self._preempted(value, reading.etag)
        elif value == "NONE":
            return
        elif value == TERMINATE or (value == MIGRATE and self._drain_on_migrate):
            self._metrics.saw(value)
            self._notice(key, reading.etag, "stop", self._maintenance_notice_s, value)
        elif value == MIGRATE:
            self._metrics.saw(value)
            log.warning("metadata: %s: live migration in about %.0f s: reported, not drained "
                        "(platform.drain_on_migrate is false)", MAINTENANCE, self._maintenance_notice_s)
        else:
            self._metrics.failed("unknown_event")
            log.warning("metadata: %s: unknown value %r; not drained", MAINTENANCE, value[:80])

    def _preempted(self, value: str, etag: str | None) -> None:
        if value == "TRUE":
            self._metrics.saw("PREEMPTED")
            self._notice(PREEMPTED, etag, "preempt", self._preempted_notice_s, value)
        elif value != "FALSE":
            self._metrics.failed("malformed")
            log.warning("metadata: %s: unexpected value %r (TRUE or FALSE expected); skipped", PREEMPTED, value[:80])

    def _notice(self, key: str, etag: str | None, kind: str, notice_s: float, value: str) -> None:
        not_after = self._clock() + notice_s
        notice, new = self._agent.add_notice(f"gce/{key}/{etag}", kind, not_after, source=SOURCE,
                                             grace_s=self._grace_s)
        if new:
            log.info("metadata: %s is %s: notice %s, not_after in %.0f s", key, value, notice.id, notice_s)

    def _failed(self, key: str, exc: DrainctlError, failures: int) -> float:
        self._metrics.failed("refused" if isinstance(exc, PermanentError) else "unavailable")
        hint_s = exc.delay_s if isinstance(exc, TemporaryError) else None
        delay_s = backoff_s(failures, initial_s=0.5, max_s=self._retry_max_s, hint_s=hint_s)
        level = logging.WARNING if failures <= 2 or failures % 30 == 0 else logging.DEBUG
        log.log(level, "metadata: %s: %s (failure %d); reading again in %.1f s", key, exc, failures, delay_s)
        return delay_s
