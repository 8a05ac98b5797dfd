"""A wire-level fake of the Kubernetes API server on loopback (aiohttp): pods, Leases and Events, as drainctl
uses them.

It speaks the documented shapes (https://kubernetes.io/docs/reference/using-api/api-concepts/):

    GET    /api/v1/namespaces/{ns}/pods?labelSelector=&limit=&continue=     PodList, paginated
    GET    /api/v1/namespaces/{ns}/pods?watch=1&resourceVersion=R&allowWatchBookmarks=true&timeoutSeconds=T
           a chunked stream of JSON lines {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...};
           R older than the last compaction: HTTP 410, or (mode "event") an ERROR event with a 410 Status
    GET    /api/v1/namespaces/{ns}/pods/{name}
    PATCH  /api/v1/namespaces/{ns}/pods/{name}       application/merge-patch+json; 409 if the patch carries a
           metadata.resourceVersion that is not the current one; 422 when adding a finalizer to a pod being deleted
    DELETE /api/v1/namespaces/{ns}/pods/{name}       DeleteOptions {gracePeriodSeconds}
    GET|PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}      PUT: 409 on a stale resourceVersion
    POST   /apis/coordination.k8s.io/v1/namespaces/{ns}/leases             409 if it exists
    POST   /api/v1/namespaces/{ns}/events      core/v1 Event: 201; 409 if its name exists; 422 when its
           involvedObject's namespace is not {ns} or a required field (name, involvedObject, reason) is missing
    GET    /api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name=N      EventList

    GET    /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices?labelSelector=kubernetes.io/service-name=S
           &limit=&continue=      EndpointSliceList, paginated: the slices the EndpointSlice controller keeps for
           a Service added with `add_service` (at most `slice_size` endpoints each), derived from its pods as the
           controller derives them: each pod with an IP whose labels match the selector is an endpoint with
           `targetRef` the pod and conditions ready (Ready and not being deleted), serving (Ready) and
           terminating (deletionTimestamp set); `stale_slice(service, pod)` adds a slice that still lists the pod
           ready (the controller's lag: an endpoint may be in two slices while they are updated)

A Service's reach is `endpoints(selector)` (the Ready pods its selector matches).

Errors are `Status` objects. resourceVersion is one global counter (like etcd's revision: any write moves it).
Deleting a pod sets deletionTimestamp = now + grace and deletionGracePeriodSeconds, as the real API server does;
the pod object goes away once its finalizers are empty and its "kubelet" is done (at the deletionTimestamp, or
earlier via `kubelet_done`).

Faults: `fail_next(n, status, match)` (500, 429 with Retry-After...), `malformed_next(n, match)` (a 200 whose
body is not JSON), `inject_line(text)` (a raw line into every open watch: malformed JSON, unknown event types),
`expire_watches(mode)` (an unrelated write moves the resourceVersion, history is compacted, and every open watch
ends: with an ERROR 410 event in mode "event", or silently in mode "http" so the resumed watch gets HTTP 410).

Tests drive it from their own thread through `serve()`, which runs it on a loop in a background thread and
returns a handle whose methods run on that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes import threaded

END = object()


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def selects(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selectors: `a=b,c==d,e!=f`."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
    return True


@dataclass(eq=False)
class Watcher:
    namespace: str
    selector: str
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    transport: asyncio.BaseTransport | None = None

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()


@dataclass
class Fault:
    remaining: int
    status: int
    match: str
    body: str | None = None
    retry_after: str | None = None
    method: str | None = None
    agent: str | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    user_agent: str
    status: int = 0
    body: Any = None
    at: float = 0.0


class FakeKubernetes:
    """The API server's state and routes. Every method runs on the fake's own event loop."""

    def __init__(self) -> None:
        self.rv = 1
        self.compacted = 0
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.history: list[tuple[int, str, str, dict[str, Any]]] = []
        """(rv, namespace, event type, pod) of every pod change, for watches that resume."""
        self.watchers: set[Watcher] = set()
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.lease_writes: list[dict[str, Any]] = []
        """Every successful lease write: {"holder", "renewTime", "acquireTime", "transitions", "at", "agent"}."""
        self.kubelet_finished: set[str] = set()
        self.after_reads: list[tuple[str, Callable[[FakeKubernetes], None]]] = []
        self._timers: list[asyncio.TimerHandle] = []
        self.services: dict[tuple[str, str], dict[str, str]] = {}
        """(namespace, Service) -> its pod selector."""
        self.stale: dict[tuple[str, str], list[str]] = {}
        """(namespace, Service) -> pods a stale extra slice still lists ready."""
        self.slice_size = 100

    # --- test controls -----------------------------------------------------------------------------------

    def add_pod(self, name: str, *, namespace: str = "default", ip: str | None = "127.0.0.1", ready: bool = True,
                labels: dict[str, str] | None = None, phase: str = "Running",
                finalizers: list[str] | None = None) -> dict[str, Any]:
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "labels": dict(labels or {"app": "api"}), "creationTimestamp": rfc3339(time.time()),
                         "finalizers": list(finalizers or [])},
            "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "api", "image": "api:1"}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
        }
        if ip is None:
            del pod["status"]["podIP"]
        self._write(namespace, "ADDED", pod)
        return copy.deepcopy(pod)

    def set_ready(self, name: str, ready: bool, *, namespace: str = "default") -> None:
        pod = self._pod(namespace, name)
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
        self._write(namespace, "MODIFIED", pod)

    def delete_pod(self, name: str, *, grace_s: int = 30, namespace: str = "default") -> dict[str, Any]:
        """A graceful delete: deletionTimestamp = now + grace (shortened only), the kubelet done at that time."""
        pod = self._pod(namespace, name)
        meta = pod["metadata"]
        when = time.time() + grace_s
        if "deletionTimestamp" in meta and datetime.fromisoformat(meta["deletionTimestamp"]).timestamp() <= when:
            return copy.deepcopy(pod)
        meta["deletionTimestamp"] = rfc3339(when)
        meta["deletionGracePeriodSeconds"] = grace_s
        self._write(namespace, "MODIFIED", pod)
        if grace_s <= 0:  # a forced delete: gone at once unless a finalizer holds it
            self.kubelet_done(name, namespace)
        else:
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(grace_s, self.kubelet_done, name, namespace))
        return copy.deepcopy(pod)

    def kubelet_done(self, name: str, namespace: str = "default") -> None:
        """The containers have stopped: the pod object goes as soon as no finalizer holds it."""
        self.kubelet_finished.add(f"{namespace}/{name}")
        self._maybe_remove(namespace, name)

    def bump(self) -> int:
        """An unrelated write elsewhere in the cluster: the global resourceVersion moves on."""
        self.rv += 1
        return self.rv

    def bookmark(self) -> None:
        for watcher in self.watchers:
            if watcher.bookmarks:
                watcher.queue.put_nowait({"type": "BOOKMARK", "object": {
                    "kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)}}})

    def expire_watches(self, mode: str = "event") -> None:
        """Compact history past every open watch, and end them (mode "event": with an ERROR 410 line)."""
        self.compacted = self.bump()
        for watcher in list(self.watchers):
            if mode == "event":
                watcher.queue.put_nowait({"type": "ERROR", "object": status(
                    410, "Expired", "too old resource version: the watch cache has moved on")})
            watcher.queue.put_nowait(END)
        self.watchers.clear()

    def end_watches(self) -> None:
        """Every open watch ends normally (as at its timeoutSeconds)."""
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(END)
        self.watchers.clear()

    def inject_line(self, line: str) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(line)

    def fail_next(self, count: int, status_code: int = 500, match: str = "", *, method: str | None = None,
                  agent: str | None = None, retry_after: str | None = None) -> None:
        """The next `count` requests whose path and query contain `match` (and of `method`, and whose User-Agent
        contains `agent`) get `status_code`."""
        self.faults.append(Fault(count, status_code, match, retry_after=retry_after, method=method, agent=agent))

    def partition(self, agent: str) -> None:
        """Every request from a client whose User-Agent contains `agent` fails from now on (503), watches end."""
        self.fail_next(10**9, 503, agent=agent)
        self.end_watches()

    def malformed_next(self, count: int, match: str = "", body: str = "{this is not json", *,
                       method: str | None = None) -> None:
        """The next `count` matching requests get a 200 whose body is not JSON."""
        self.faults.append(Fault(count, 200, match, body=body, method=method))

    def after_next_read(self, name: str, change: Callable[[FakeKubernetes], None]) -> None:
        """Right after the next GET of pod `name` is answered, `change` runs: a write racing with the reader."""
        self.after_reads.append((name, change))

    def add_finalizer(self, name: str, finalizer: str, *, namespace: str = "default") -> None:
        """Another controller adds its own finalizer."""
        pod = self._pod(namespace, name)
        pod["metadata"]["finalizers"] = [*pod["metadata"].get("finalizers", []), finalizer]
        self._write(namespace, "MODIFIED", pod)

    def add_service(self, name: str, selector: dict[str, str], *, namespace: str = "default") -> None:
        self.services[(namespace, name)] = dict(selector)

    def stale_slice(self, service: str, pod: str, *, namespace: str = "default") -> None:
        self.stale.setdefault((namespace, service), []).append(pod)

    def clear_faults(self) -> None:
        self.faults.clear()

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = self.pods.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def open_watches(self) -> int:
        """Watches being served whose client is still connected."""
        return sum(1 for watcher in self.watchers if watcher.connected)

    def endpoints(self, selector: dict[str, str], namespace: str = "default") -> list[str]:
        """The pods a Service with this selector reaches (what the EndpointSlice controller lists as ready): its
        labels all match, the pod is Ready and not being deleted."""
        def reached(pod: dict[str, Any]) -> bool:
            labels, conditions = pod["metadata"].get("labels") or {}, pod["status"].get("conditions") or []
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            matched = all(labels.get(key) == value for key, value in selector.items())
            return matched and ready and "deletionTimestamp" not in pod["metadata"]

        return sorted(name for (ns, name), pod in self.pods.items() if ns == namespace and reached(pod))

    def lease(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = self.leases.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def events_on(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        """The Events whose involvedObject is the object `name`, oldest first."""
        return [copy.deepcopy(e) for (ns, _), e in self.events.items()
                if ns == namespace and e["involvedObject"].get("name") == name]

    def requests_where(self, method: str, contains: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == method and contains in r.path]

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.end_watches()

    # --- state ---------------------------------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.pods[(namespace, name)]

    def _write(self, namespace: str, kind: str, pod: dict[str, Any]) -> None:
        pod["metadata"]["resourceVersion"] = str(self.bump())
        key = (namespace, pod["metadata"]["name"])
        if kind == "DELETED":
            self.pods.pop(key, None)
        else:
            self.pods[key] = pod
        snapshot = copy.deepcopy(pod)
        self.history.append((self.rv, namespace, kind, snapshot))
        for watcher in self.watchers:
            if watcher.namespace == namespace and selects(watcher.selector, snapshot["metadata"].get("labels", {})):
                watcher.queue.put_nowait({"type": kind, "object": snapshot})

    def _maybe_remove(self, namespace: str, name: str) -> None:
        pod = self.pods.get((namespace, name))
        if pod is None:
            return
        meta = pod["metadata"]
        done = f"{namespace}/{name}" in self.kubelet_finished
        if "deletionTimestamp" in meta and not meta.get("finalizers") and done:
            self._write(namespace, "DELETED", pod)

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._faults_and_log])
        core = "/api/v1/namespaces/{ns}/pods"
        app.router.add_get(core, self._pods_list_or_watch)
        app.router.add_get(core + "/{name}", self._pod_get)
        app.router.add_patch(core + "/{name}", self._pod_patch)
        app.router.add_delete(core + "/{name}", self._pod_delete)
        leases = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        app.router.add_post(leases, self._lease_create)
        app.router.add_get(leases + "/{name}", self._lease_get)
        app.router.add_put(leases + "/{name}", self._lease_put)
        app.router.add_get("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", self._slices_list)
        app.router.add_post("/api/v1/namespaces/{ns}/events", self._event_create)
        app.router.add_get("/api/v1/namespaces/{ns}/events", self._events_list)
        return app

    @web.middleware
    async def _faults_and_log(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            raw = await request.read()
            with contextlib.suppress(ValueError):
                body = json.loads(raw)
        record = Request(request.method, request.path, dict(request.query), request.headers.get("User-Agent", ""),
                         body=body, at=time.time())
        self.requests.append(record)
        fault = next((f for f in self.faults if f.remaining > 0 and f.match in request.path_qs
                      and f.method in (None, request.method) and (f.agent or "") in record.user_agent), None)
        if fault is not None:
            fault.remaining -= 1
            record.status = fault.status
            if fault.body is not None:
                return web.Response(status=fault.status, text=fault.body, content_type="application/json")
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return web.json_response(status(fault.status, "InternalError", "injected fault"), status=fault.status,
                                     headers=headers)
        response: web.StreamResponse = await handler(request)
        record.status = response.status
        return response

    async def _pods_list_or_watch(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") in ("1", "true", "True"):
            return await self._watch(request)
        namespace, selector = request.match_info["ns"], request.query.get("labelSelector", "")
        limit = int(request.query.get("limit") or 0)
        token = request.query.get("continue")
        rv, offset = (int(part) for part in token.split(":")) if token else (self.rv, 0)
        if rv < self.compacted:
            return web.json_response(status(410, "Expired", "the continue token has expired"), status=410)
        items = sorted((p for (ns, _), p in self.pods.items()
                        if ns == namespace and selects(selector, p["metadata"].get("labels", {}))),
                       key=lambda p: p["metadata"]["name"])
        page = items[offset:offset + limit] if limit else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit and offset + limit < len(items):
            meta["continue"] = f"{rv}:{offset + limit}"
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": page})

    async def _slices_list(self, request: web.Request) -> web.Response:
        namespace, selector = request.match_info["ns"], request.query.get("labelSelector", "")
        items = [piece for (ns, name) in sorted(self.services) if ns == namespace
                 for piece in self._slices(namespace, name) if selects(selector, piece["metadata"]["labels"])]
        limit, offset = int(request.query.get("limit") or 0), int(request.query.get("continue") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if limit and offset + limit < len(items):
            meta["continue"] = str(offset + limit)
        page = items[offset:offset + limit] if limit else items[offset:]
        return web.json_response({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                                  "metadata": meta, "items": page})

    def _slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
        wanted = self.services[(namespace, service)]
        pods = sorted((p for (ns, _), p in self.pods.items() if ns == namespace and p["status"].get("podIP")
                       and all(p["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())),
                      key=lambda p: p["metadata"]["name"])
        endpoints = [_endpoint(pod) for pod in pods]
        stale = [{**_endpoint(self.pods[(namespace, name)]), "conditions": {"ready": True, "serving": True,
                                                                           "terminating": False}}
                 for name in self.stale.get((namespace, service), []) if (namespace, name) in self.pods]
        chunks = [endpoints[i:i + self.slice_size] for i in range(0, len(endpoints), self.slice_size)] or [[]]
        return [_slice(namespace, service, f"{service}-{index:05d}", chunk)
                for index, chunk in enumerate([*chunks, *([stale] if stale else [])])]

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        namespace, selector = request.match_info["ns"], request.query.get("labelSelector", "")
        since = request.query.get("resourceVersion") or "0"
        start = int(since)
        if start and start < self.compacted:
            return web.json_response(status(410, "Expired", f"too old resource version: {start} ({self.compacted})"),
                                     status=410)
        timeout_s = float(request.query.get("timeoutSeconds") or 1800)
        watcher = Watcher(namespace, selector, request.query.get("allowWatchBookmarks") == "true",
                          transport=request.transport)
        backlog = [{"type": kind, "object": copy.deepcopy(pod)} for rv, ns, kind, pod in self.history
                   if rv > start and start and ns == namespace and selects(selector, pod["metadata"].get("labels", {}))]
        if not start:  # no resourceVersion: synthetic ADDED for what exists now
            backlog = [{"type": "ADDED", "object": copy.deepcopy(p)} for (ns, _), p in self.pods.items()
                       if ns == namespace and selects(selector, p["metadata"].get("labels", {}))]
        for item in backlog:
            watcher.queue.put_nowait(item)
        self.watchers.add(watcher)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await watcher.queue.get()
                except TimeoutError:
                    break
                if item is END:
                    break
                line = item if isinstance(item, str) else json.dumps(item)
                await response.write(line.encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watchers.discard(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _pod_get(self, request: web.Request) -> web.Response:
        pod = self.pods.get((request.match_info["ns"], request.match_info["name"]))
        if pod is None:
            return web.json_response(status(404, "NotFound", f'pods "{request.match_info["name"]}" not found'),
                                     status=404)
        response = web.json_response(pod)
        for hook in [h for h in self.after_reads if h[0] == request.match_info["name"]]:
            self.after_reads.remove(hook)
            hook[1](self)
        return response

    async def _pod_patch(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        if request.content_type != "application/merge-patch+json":
            return web.json_response(status(415, "UnsupportedMediaType", request.content_type), status=415)
        pod = self.pods.get((namespace, name))
        if pod is None:
            return web.json_response(status(404, "NotFound", f'pods "{name}" not found'), status=404)
        patch = json.loads(await request.read())
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != pod["metadata"]["resourceVersion"]:
            message = f'Operation cannot be fulfilled on pods "{name}": the object has been modified'
            return web.json_response(status(409, "Conflict", message), status=409)
        patched = merge_patch(pod, patch)
        before, after = set(pod["metadata"].get("finalizers") or []), set(patched["metadata"].get("finalizers") or [])
        if "deletionTimestamp" in pod["metadata"] and after - before:
            message = "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted"
            return web.json_response(status(422, "Invalid", message), status=422)
        self._write(namespace, "MODIFIED", patched)
        self._maybe_remove(namespace, name)
        return web.json_response(patched)

    async def _pod_delete(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["ns"], request.match_info["name"]
        if (namespace, name) not in self.pods:
            return web.json_response(status(404, "NotFound", f'pods "{name}" not found'), status=404)
        body = json.loads(await request.read() or b"{}")
        return web.json_response(self.delete_pod(name, grace_s=int(body.get("gracePeriodSeconds", 30)),
                                                 namespace=namespace))

    async def _lease_get(self, request: web.Request) -> web.Response:
        lease = self.leases.get((request.match_info["ns"], request.match_info["name"]))
        if lease is None:
            return web.json_response(status(404, "NotFound", "lease not found"), status=404)
        return web.json_response(lease)

    async def _lease_create(self, request: web.Request) -> web.Response:
        lease = json.loads(await request.read())
        key = (request.match_info["ns"], lease["metadata"]["name"])
        if key in self.leases:
            return web.json_response(status(409, "AlreadyExists", "lease already exists"), status=409)
        return web.json_response(self._store_lease(key, lease, request), status=201)

    async def _lease_put(self, request: web.Request) -> web.Response:
        lease = json.loads(await request.read())
        key = (request.match_info["ns"], request.match_info["name"])
        current = self.leases.get(key)
        if current is None:
            return web.json_response(status(404, "NotFound", "lease not found"), status=404)
        if lease["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            return web.json_response(status(409, "Conflict", "the object has been modified"), status=409)
        return web.json_response(self._store_lease(key, lease, request))

    async def _event_create(self, request: web.Request) -> web.Response:
        event, namespace = json.loads(await request.read()), request.match_info["ns"]
        name = (event.get("metadata") or {}).get("name")
        involved = event.get("involvedObject")
        if not name or not isinstance(involved, dict) or not event.get("reason"):
            return web.json_response(status(422, "Invalid", "Event is invalid: metadata.name, involvedObject, "
                                            "reason: Required value"), status=422)
        if involved.get("namespace", namespace) != namespace:
            message = "Event is invalid: involvedObject.namespace: Invalid value: does not match event.namespace"
            return web.json_response(status(422, "Invalid", message), status=422)
        if (namespace, name) in self.events:
            return web.json_response(status(409, "AlreadyExists", f'events "{name}" already exists'), status=409)
        event["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=str(self.bump()),
                                 creationTimestamp=rfc3339(time.time()))
        self.events[(namespace, name)] = event
        return web.json_response(event, status=201)

    async def _events_list(self, request: web.Request) -> web.Response:
        namespace, selector = request.match_info["ns"], request.query.get("fieldSelector", "")
        wanted = selector.removeprefix("involvedObject.name=") if selector else None
        items = [e for (ns, _), e in self.events.items()
                 if ns == namespace and wanted in (None, e["involvedObject"].get("name"))]
        return web.json_response({"kind": "EventList", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": str(self.rv)}, "items": items})

    def _store_lease(self, key: tuple[str, str], lease: dict[str, Any], request: web.Request) -> dict[str, Any]:
        lease["metadata"]["resourceVersion"] = str(self.bump())
        lease["metadata"]["namespace"] = key[0]
        self.leases[key] = lease
        spec = lease.get("spec") or {}
        self.lease_writes.append({"holder": spec.get("holderIdentity"), "renewTime": spec.get("renewTime"),
                                  "acquireTime": spec.get("acquireTime"), "transitions": spec.get("leaseTransitions"),
                                  "duration": spec.get("leaseDurationSeconds"), "at": time.time(),
                                  "agent": request.headers.get("User-Agent", "")})
        return lease


Handle = threaded.Handle[FakeKubernetes]
"""The fake seen from the test's thread: method calls run on the fake's loop, data attributes are copied."""


def _endpoint(pod: dict[str, Any]) -> dict[str, Any]:
    conditions = pod["status"].get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    terminating = "deletionTimestamp" in pod["metadata"]
    meta = pod["metadata"]
    return {"addresses": [pod["status"]["podIP"]],
            "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
            "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
            "nodeName": "node-1"}


def _slice(namespace: str, service: str, name: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """An EndpointSlice; one without endpoints has `endpoints: null`, as the API server serializes it."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": namespace, "labels": {
                "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by":
                "endpointslice-controller.k8s.io"}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], "endpoints": endpoints or None}


@contextlib.contextmanager
def serve() -> Iterator[Handle]:
    """The fake on 127.0.0.1 (a port the kernel picks), on a loop in a background thread; stopped on exit."""
    with threaded.serve(FakeKubernetes(), name="fake-kubernetes") as handle:
        yield handle
