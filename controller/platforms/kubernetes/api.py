"""The controller's boundary with the Kubernetes API server, through the official `kubernetes` client.

The client is synchronous (urllib3). Every call runs on a thread of this module's own pool, and each watch on a
thread of its own, so the event loop never blocks and a long watch never starves anyone else's threads.
Answers are parsed here into frozen shapes (`Pod`, `Lease`; Events are only created; EndpointSlices are
handed to `endpoints.py` as listed, which reads only their endpoints' conditions); one malformed pod in a list is
skipped, not fatal.
The client's errors become ours at this boundary:

    KubernetesUnavailable (TemporaryError)  no connection, a timeout, 429 or 5xx (Retry-After honoured)
    Conflict (TemporaryError)               409: the object changed since it was read (resourceVersion)
    Gone (TemporaryError)                   410: the resourceVersion is too old to watch from; relist
    Malformed (TemporaryError)              an answer that is not the documented JSON
    NotFound (PermanentError)               404
    Refused (PermanentError)                401, 403 (RBAC) and any other 4xx

Where the API server is: `api_url` when given (the fakes in tests, a proxy), else the in-cluster service account,
else the current context of ~/.kube/config (or $KUBECONFIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.watch.watch import iter_resp_lines

from controller.core.errors import ConfigError, PermanentError, TemporaryError
from controller.core.http import retry_after_s

T = TypeVar("T")
log = logging.getLogger("drainctl.platforms.kubernetes.api")

MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE_SIZE = 500
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label the EndpointSlice controller puts on every slice of a Service."""
_WATCH_READ_SLACK_S = 30.0
"""A watch with no byte for this long past its own timeout is a dead connection."""
NO_HIDDEN_RETRIES = urllib3.Retry(total=1, read=0, status=0, redirect=0, respect_retry_after_header=False)
"""urllib3 would retry 503s and 429s itself (sleeping on Retry-After in a thread, unseen by metrics and logs):
only a failed connect is retried at once; every other failure reaches the caller's own backoff."""


class KubernetesUnavailable(TemporaryError):
    pass


class Conflict(TemporaryError):
    pass


class Gone(TemporaryError):
    pass


class Malformed(TemporaryError):
    pass


class NotFound(PermanentError):
    pass


class Refused(PermanentError):
    pass


# --- shapes ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """What drainctl needs of a pod."""

    name: str
    namespace: str
    uid: str
    resource_version: str
    ip: str | None
    phase: str
    ready: bool
    """The Ready condition is True: the pod is in its Service's endpoints and may hold sockets."""
    deletion_at: float | None
    """`metadata.deletionTimestamp` as unix seconds: the API server sets it to the delete request's time plus
    the grace period, so it is when the kubelet kills the containers. None: not being deleted."""
    grace_s: float | None
    """`metadata.deletionGracePeriodSeconds` (already included in `deletion_at`)."""
    finalizers: tuple[str, ...]

    @classmethod
    def from_json(cls, raw: Any) -> Pod:
        try:
            meta, status = raw["metadata"], raw.get("status") or {}
            conditions = status.get("conditions") or []
            grace = meta.get("deletionGracePeriodSeconds")
            return cls(
                name=_text(meta["name"]),
                namespace=_text(meta.get("namespace", "")),
                uid=_text(meta["uid"]),
                resource_version=_text(meta["resourceVersion"]),
                ip=_optional_text(status.get("podIP")),
                phase=_text(status.get("phase", "Unknown")),
                ready=any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
                deletion_at=_optional_time(meta.get("deletionTimestamp")),
                grace_s=None if grace is None else float(grace),
                finalizers=tuple(_text(f) for f in meta.get("finalizers") or ()),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Malformed(f"not a pod: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class PodList:
    pods: list[Pod]
    resource_version: str
    """Watch from here to see every change after this list."""
    skipped: list[str]
    """Why each malformed item was skipped."""


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch stream. `problem` is set (and nothing else is) when the line was not usable JSON."""

    type: str
    pod: Pod | None = None
    resource_version: str | None = None
    """Of the pod or the bookmark: where to resume the watch."""
    code: int | None = None
    """ERROR events: the Status code (410: the resourceVersion is too old)."""
    message: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Lease:
    """A `coordination.k8s.io/v1` Lease, as leader election uses it."""

    name: str
    namespace: str
    holder: str | None
    duration_s: int | None
    acquired_at: float | None
    renewed_at: float | None
    transitions: int = 0
    resource_version: str | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Lease:
        try:
            meta, spec = raw["metadata"], raw.get("spec") or {}
            duration = spec.get("leaseDurationSeconds")
            return cls(
                name=_text(meta["name"]),
                namespace=_text(meta.get("namespace", "")),
                holder=_optional_text(spec.get("holderIdentity")) or None,
                duration_s=None if duration is None else int(duration),
                acquired_at=_optional_time(spec.get("acquireTime")),
                renewed_at=_optional_time(spec.get("renewTime")),
                transitions=int(spec.get("leaseTransitions") or 0),
                resource_version=_text(meta["resourceVersion"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise Malformed(f"not a lease: {type(exc).__name__}: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.resource_version is not None:
            meta["resourceVersion"] = self.resource_version
        spec: dict[str, Any] = {"holderIdentity": self.holder, "leaseTransitions": self.transitions}
        if self.duration_s is not None:
            spec["leaseDurationSeconds"] = self.duration_s
        if self.acquired_at is not None:
            spec["acquireTime"] = micro_time(self.acquired_at)
        if self.renewed_at is not None:
            spec["renewTime"] = micro_time(self.renewed_at)
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def parse_watch_line(line: str) -> WatchEvent:
    """One JSON line of a watch stream; never raises (an unusable line comes back with `problem` set)."""
    try:
        raw = json.loads(line)
        kind, obj = raw["type"], raw.get("object")
        if not isinstance(kind, str):
            raise TypeError("type is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        return WatchEvent(type="", problem=f"{type(exc).__name__}: {exc}")
    try:
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            pod = Pod.from_json(obj)
            return WatchEvent(type=kind, pod=pod, resource_version=pod.resource_version)
        if kind == "BOOKMARK":
            return WatchEvent(type=kind, resource_version=_text(obj["metadata"]["resourceVersion"]))
        if kind == "ERROR":
            return WatchEvent(type=kind, code=int(obj.get("code", 0)), message=str(obj.get("message", "")))
    except (Malformed, KeyError, TypeError, ValueError, AttributeError) as exc:
        return WatchEvent(type=kind, problem=f"{kind} event: {exc}")
    return WatchEvent(type=kind)


# --- the API -----------------------------------------------------------------------------------------------


class KubernetesApi:
    """Pods, Leases and Events of one API server. Every method is a coroutine; errors are ours (module docstring)."""

    def __init__(self, api: k8s.ApiClient, *, request_timeout_s: float) -> None:
        self._api = api
        self._core = k8s.CoreV1Api(api)
        self._coordination = k8s.CoordinationV1Api(api)
        self._discovery = k8s.DiscoveryV1Api(api)
        self._timeout_s = request_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kubernetes")

    async def list_pods(self, namespace: str, label_selector: str, *, timeout_s: float | None = None) -> PodList:
        """Every pod matching the selector, page by page (a continue token that expired is `Gone`)."""
        pods: list[Pod] = []
        skipped: list[str] = []
        token: str | None = None
        while True:
            page = await self._json(
                "list pods", self._core.list_namespaced_pod, namespace, label_selector=label_selector or None,
                limit=LIST_PAGE_SIZE, _continue=token, timeout_s=timeout_s,
            )
            items, meta = _list_parts(page)
            for item in items:
                try:
                    pods.append(Pod.from_json(item))
                except Malformed as exc:
                    skipped.append(str(exc))
            token = meta.get("continue") or None
            if token is None:
                return PodList(pods, _text(meta.get("resourceVersion", "")), skipped)

    async def watch_pods(
        self, namespace: str, label_selector: str, *, resource_version: str, timeout_s: float
    ) -> AsyncGenerator[WatchEvent, None]:
        """The changes after `resource_version`, with bookmarks, until the server ends the watch (`timeout_s`).

        Opening it may raise our errors (410 is `Gone`); so may reading it (a dropped connection).
        """
        loop = asyncio.get_running_loop()
        own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubernetes-watch")
        call = functools.partial(
            self._core.list_namespaced_pod, namespace, label_selector=label_selector or None, watch=True,
            allow_watch_bookmarks=True, resource_version=resource_version, timeout_seconds=max(1, int(timeout_s)),
            _preload_content=False, _request_timeout=(self._timeout_s, timeout_s + _WATCH_READ_SLACK_S),
        )
        opening = own.submit(_mapped, "watch pods", call)
        ended = False
        try:
            response = await asyncio.wrap_future(opening)
            lines: Iterator[str] = iter_resp_lines(response)  # type: ignore[no-untyped-call]
            read = functools.partial(_mapped, "read the pod watch", functools.partial(next, lines, None))
            while (line := await loop.run_in_executor(own, read)) is not None:
                if line.strip():
                    yield parse_watch_line(line)
            ended = True
        finally:
            # Cancelled (or failed) mid-way: cut the connection, also one still being opened, so its thread ends.
            opening.add_done_callback(functools.partial(_finish_watch, own, clean=ended))
            own.shutdown(wait=False)

    async def list_endpoint_slices(self, namespace: str, service: str, *, timeout_s: float | None = None) -> list[Any]:
        """The raw `discovery.k8s.io/v1` EndpointSlices of one Service (label `kubernetes.io/service-name`),
        every page (`endpoints.py` reads them)."""
        slices: list[Any] = []
        token: str | None = None
        while True:
            page = await self._json(
                "list endpointslices", self._discovery.list_namespaced_endpoint_slice, namespace,
                label_selector=f"{SERVICE_NAME_LABEL}={service}", limit=LIST_PAGE_SIZE, _continue=token,
                timeout_s=timeout_s,
            )
            items, meta = _list_parts(page)
            slices.extend(items)
            token = meta.get("continue") or None
            if token is None:
                return slices

    async def get_pod(self, namespace: str, name: str) -> Pod:
        return Pod.from_json(await self._json("get pod", self._core.read_namespaced_pod, name, namespace))

    async def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any], *,
                        timeout_s: float | None = None) -> Pod:
        """A JSON merge patch (RFC 7386); put `metadata.resourceVersion` in it to fail with `Conflict` if the
        pod changed since it was read."""
        raw = await self._json(
            "patch pod", self._core.patch_namespaced_pod, name, namespace, dict(patch), _content_type=MERGE_PATCH,
            timeout_s=timeout_s,
        )
        return Pod.from_json(raw)

    async def get_lease(self, namespace: str, name: str, *, timeout_s: float | None = None) -> Lease:
        read = self._coordination.read_namespaced_lease
        return Lease.from_json(await self._json("get lease", read, name, namespace, timeout_s=timeout_s))

    async def create_lease(self, lease: Lease, *, timeout_s: float | None = None) -> Lease:
        create = self._coordination.create_namespaced_lease
        raw = await self._json("create lease", create, lease.namespace, lease.to_json(), timeout_s=timeout_s)
        return Lease.from_json(raw)

    async def replace_lease(self, lease: Lease, *, timeout_s: float | None = None) -> Lease:
        """PUT with the lease's resourceVersion: `Conflict` if someone else wrote it since it was read."""
        replace = self._coordination.replace_namespaced_lease
        raw = await self._json(
            "update lease", replace, lease.name, lease.namespace, lease.to_json(), timeout_s=timeout_s
        )
        return Lease.from_json(raw)

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> None:
        """POST a core/v1 Event (`controller/platforms/kubernetes/events.py` makes the body)."""
        await self._json("create event", self._core.create_namespaced_event, namespace, dict(event))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()  # type: ignore[no-untyped-call]

    async def _json(self, what: str, method: Callable[..., Any], *args: Any, timeout_s: float | None = None,
                    **kwargs: Any) -> Any:
        timeout = timeout_s if timeout_s is not None else self._timeout_s
        call = functools.partial(method, *args, _preload_content=False, _request_timeout=timeout, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _mapped, what, functools.partial(_read_json, what, call))


def connect(api_url: str | None, *, user_agent: str, request_timeout_s: float) -> KubernetesApi:
    """A client of the API server at `api_url`, or in-cluster, or per kubeconfig; `ConfigError` if none works."""
    configuration = k8s.Configuration()
    configuration.retries = NO_HIDDEN_RETRIES
    if api_url is not None:
        configuration.host = api_url
    else:
        _load_credentials(configuration)
    api = k8s.ApiClient(configuration)
    api.user_agent = user_agent
    return KubernetesApi(api, request_timeout_s=request_timeout_s)


def _load_credentials(configuration: k8s.Configuration) -> None:
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return
    except ConfigException as in_cluster:
        reason = str(in_cluster)
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigError(
            f"kubernetes: no api_url given, not in a cluster ({reason}), and no usable kubeconfig ({exc})"
        ) from exc


# --- helpers, run on the client's threads --------------------------------------------------------------------


def _mapped(what: str, call: Callable[[], T]) -> T:
    """Run a client call, converting its errors to ours."""
    try:
        return call()
    except ApiException as exc:
        raise _from_api(what, exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesUnavailable(f"kubernetes: {what}: {type(exc).__name__}: {exc}") from exc


def _read_json(what: str, call: Callable[[], Any]) -> Any:
    response = call()
    try:
        body = response.data
    finally:
        _release(response)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Malformed(f"kubernetes: {what}: the answer is not JSON ({exc})") from exc


def _release(response: Any) -> None:
    with contextlib.suppress(Exception):
        response.release_conn()


def _finish_watch(own: ThreadPoolExecutor, opening: Future[Any], *, clean: bool) -> None:
    """A watch ended: a stream read to its end goes back to the pool; any other is shut down (which unblocks
    a thread still reading it) and closed on the watch's own thread, after that read returns."""
    if opening.cancelled() or opening.exception() is not None:
        return
    response = opening.result()
    if not clean:
        with contextlib.suppress(Exception):
            response.shutdown()
    finish = _release if clean else _close
    try:
        own.submit(finish, response)
    except RuntimeError:  # the pool was shut down while the watch was opening: we are on its thread, done with it
        finish(response)


def _close(response: Any) -> None:
    with contextlib.suppress(Exception):
        response.close()
        response.release_conn()


def _from_api(what: str, exc: ApiException) -> TemporaryError | PermanentError:
    status = int(exc.status or 0)
    message = f"kubernetes: {what}: HTTP {status} {exc.reason or ''}".rstrip()
    if status == 0:
        return KubernetesUnavailable(f"kubernetes: {what}: {exc.reason}")
    if status == 409:
        return Conflict(message)
    if status == 410:
        return Gone(message)
    if status == 404:
        return NotFound(message)
    if status == 429 or status >= 500:
        return KubernetesUnavailable(message, delay_s=_retry_after_s(exc.headers))
    return Refused(message)


def _retry_after_s(headers: Mapping[str, str] | None) -> float:
    """The one Retry-After parser (controller/core/http.py); 1 s when there is none."""
    delay_s = retry_after_s((headers or {}).get("Retry-After") or (headers or {}).get("retry-after"))
    return 1.0 if delay_s is None else delay_s


def _list_parts(page: Any) -> tuple[list[Any], dict[str, Any]]:
    if not isinstance(page, dict) or not isinstance(page.get("items"), list):
        raise Malformed("kubernetes: a list: the answer has no items list")
    meta = page.get("metadata") or {}
    if not isinstance(meta, dict):
        raise Malformed("kubernetes: a list: metadata is not an object")
    return page["items"], meta


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _optional_time(value: Any) -> float | None:
    """RFC 3339 (`2024-05-01T12:00:00Z`, with or without microseconds) as unix seconds."""
    if value is None:
        return None
    moment = datetime.fromisoformat(_text(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def micro_time(unix_s: float) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(unix_s: float) -> str:
    """Kubernetes Time: RFC 3339 to the second, in UTC."""
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
