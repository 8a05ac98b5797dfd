"""A wire-level fake of the Compute Engine API on loopback: regional managed instance groups, as drainctl reads them.

It speaks the documented shapes (cloud.google.com/compute/docs/reference/rest/v1/regionInstanceGroupManagers/
listManagedInstances, ManagedInstance, ManagedInstanceShutdownDetails):

    POST /compute/v1/projects/{project}/regions/{region}/instanceGroupManagers/{mig}/listManagedInstances
         ?maxResults=N&pageToken=T
         -> 200 {"managedInstances": [ManagedInstance, ...], "nextPageToken": "..."}   (no token on the last page)
         ManagedInstance: {"instance": "https://www.googleapis.com/compute/v1/projects/P/zones/Z/instances/NAME",
                           "id": "123", "instanceStatus": "RUNNING"|"PENDING_STOP"|..., "currentAction": "NONE"|...,
                           "shutdownDetails": {"requestTimestamp": RFC3339, "maxDuration": {"seconds": "600"}}}
    GET  /compute/v1/projects/{project}/aggregated/instances?maxResults=N&pageToken=T   (instances.aggregatedList)
         -> 200 {"items": {"zones/Z": {"instances": [Instance, ...]}, "zones/Y": {"warning": {...}}},
                 "nextPageToken": "..."}
         Instance: {"name", "id", "zone": URL, "status", "networkInterfaces": [{"networkIP": "10.128.0.2"}]}
    POST /compute/v1/projects/{project}/global/backendServices/{service}/getHealth       (backendServices.getHealth)
    POST /compute/v1/projects/{project}/regions/{region}/backendServices/{service}/getHealth   (the regional one)
         body {"group": "https://www.googleapis.com/compute/v1/projects/P/regions/R/instanceGroups/MIG"}
         -> 200 {"kind": "compute#backendServiceGroupHealth", "annotations": {},
                 "healthStatus": [{"instance": URL, "ipAddress", "port", "healthState": "HEALTHY"|"UNHEALTHY"}]}
         (no healthStatus for an empty group); 404 for an unknown service, 400 for a missing group or one that
         is not a backend of the service. A MIG deleting or abandoning an instance (currentAction DELETING,
         ABANDONING) has taken it out of its group: it is not listed. An instance with a readiness URL
         (`check_readiness`) is probed like GCP's health checker: GET every `check_interval_s`, UNHEALTHY after
         `unhealthy_threshold` failures in a row (an answer other than 200, or none within `check_timeout_s`),
         HEALTHY again after `healthy_threshold` successes; `set_health` sets the state by command.
    GET  /compute/v1/projects/{project}/aggregated/instanceGroupManagers?maxResults=N&pageToken=T
         -> 200 {"kind": "compute#instanceGroupManagerAggregatedList",
                 "items": {"regions/R": {"instanceGroupManagers": [InstanceGroupManager, ...]},
                           "zones/Z": {"instanceGroupManagers": [...]}, "regions/Y": {"warning": {...}}},
                 "nextPageToken": "..."}
         InstanceGroupManager: {"kind", "name", "id", "region": URL (or "zone" for a zonal one), "selfLink",
                                "instanceTemplate": URL, "versions": [{"name", "instanceTemplate": URL}],
                                "allInstancesConfig": {"properties": {"labels": {...}}}, "targetSize"}
                                (no "labels": the resource has none)
    GET  /compute/v1/projects/{project}/global/instanceTemplates/{name}            (instanceTemplates.get)
    GET  /compute/v1/projects/{project}/regions/{region}/instanceTemplates/{name}  (regionInstanceTemplates.get)
         -> 200 {"kind": "compute#instanceTemplate", "name", "id", "selfLink",
                 "properties": {"machineType", "labels": {...}}}   404 when there is no such template
    POST /token   an OAuth2 token endpoint (the `token_uri` of a service-account key file: a JWT bearer grant)
         -> {"access_token", "expires_in", "token_type": "Bearer"}

Errors are Google's JSON error shape `{"error": {"code", "message", "status"}}`. With `require_token` set, a
request without `Authorization: Bearer <that token>` gets 401. Faults: `fail_next(n, status, retry_after)`
(429 with Retry-After, 403, 500...), `malformed_next(n)` (a 200 whose body is not JSON); any `currentAction` value,
known or not, can be set. Every request is recorded (method, path, query, Authorization, time, status).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

ZONE_SUFFIXES = ("a", "b", "c")
OUT_OF_GROUP = ("DELETING", "ABANDONING")
"""currentAction values under which the MIG has already removed the instance from its instance group."""
ERROR_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
COMPUTE = "https://www.googleapis.com/compute/v1"


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status,
                      "errors": [{"message": message, "domain": "global", "reason": status.lower()}]}}


def _invalid(message: str) -> web.Response:
    return web.json_response(google_error(400, "INVALID_ARGUMENT", message), status=400)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    authorization: str
    at: float
    status: int = 0
    body: str = ""


@dataclass
class Fault:
    remaining: int
    status: int
    retry_after: str | None = None
    body: str | None = None
    match: str = ""


@dataclass
class ManagedInstance:
    name: str
    zone: str
    id: str
    status: str = "RUNNING"
    action: str = "NONE"
    shutdown: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    network_ip: str = ""
    """networkInterfaces[0].networkIP; empty: none yet (an instance being created)."""
    health: str = "HEALTHY"
    """What backend services' getHealth says of it."""
    readiness_url: str = ""
    """Probed by the fake's health checker when set."""
    fails: int = 0
    passes: int = 0


@dataclass
class BackendService:
    name: str
    region: str | None
    groups: list[tuple[str, str]]
    """(region, MIG) of each backend."""


@dataclass
class Manager:
    """A MIG as `instanceGroupManagers` has it (its instances are in `FakeCompute.groups`)."""

    templates: list[str]
    """Its versions' instance template URLs (one, unless a rolling update is under way)."""
    all_instances_labels: dict[str, str] = field(default_factory=dict)
    zone: str | None = None
    """A zonal MIG's zone (None: regional)."""


class FakeCompute:
    """Regional MIGs and their instances; every method runs on the fake's own loop."""

    def __init__(
        self, *, project: str = "proj", page_size: int | None = None, require_token: str | None = None,
        check_interval_s: float = 5.0, check_timeout_s: float = 5.0, unhealthy_threshold: int = 2,
        healthy_threshold: int = 2,
    ) -> None:
        self.project = project
        self.check_interval_s, self.check_timeout_s = check_interval_s, check_timeout_s
        self.unhealthy_threshold, self.healthy_threshold = unhealthy_threshold, healthy_threshold
        self.backend_services: dict[tuple[str | None, str], BackendService] = {}
        self.health_changes: list[tuple[str, str, float]] = []
        """(instance, new health, unix time) of every change the health checker or a command made."""
        self._checker: asyncio.Task[None] | None = None
        self.page_size = page_size
        """Forced page size (else the request's maxResults, else 500)."""
        self.require_token = require_token
        self.groups: dict[tuple[str, str], list[ManagedInstance]] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.token_grants: list[dict[str, str]] = []
        self.deadlines: dict[str, float] = {}
        """Instance name -> unix time its graceful shutdown ends (set by `mark`)."""
        self.managers: dict[tuple[str, str], Manager] = {}
        """(region or zone, MIG name) -> how the MIG makes instances; a group without one uses `api-template-1`."""
        self.templates: dict[str, dict[str, Any]] = {}
        """Template URL path (`projects/P/global/instanceTemplates/N`) -> its instanceTemplate JSON."""

    # --- test controls -----------------------------------------------------------------------------------

    def add_group(self, region: str, mig: str, names: list[str]) -> None:
        self.groups[(region, mig)] = [
            ManagedInstance(name, f"{region}-{ZONE_SUFFIXES[i % 3]}", str(10**15 + i), network_ip=f"10.128.0.{i + 2}")
            for i, name in enumerate(names)
        ]

    def add_instance(self, region: str, mig: str, name: str, *, network_ip: str, zone: str | None = None) -> None:
        """The MIG creates an instance (a scale-out, a rolling upgrade's new VM)."""
        members = self.groups.setdefault((region, mig), [])
        ident = str(10**15 + sum(len(m) for m in self.groups.values()) + 100)
        members.append(ManagedInstance(name, zone or f"{region}-a", ident, network_ip=network_ip))

    def add_template(self, name: str, labels: dict[str, str], *, region: str | None = None) -> str:
        """An instance template (global, or regional in `region`) whose instances get `labels`; its URL."""
        scope = f"regions/{region}" if region else "global"
        path = f"projects/{self.project}/{scope}/instanceTemplates/{name}"
        self.templates[path] = {"kind": "compute#instanceTemplate", "name": name, "id": str(uuid.uuid4().int)[:18],
                                "selfLink": f"{COMPUTE}/{path}",
                                "properties": {"machineType": "e2-small", "labels": dict(labels)}}
        return f"{COMPUTE}/{path}"

    def set_manager(self, where: str, mig: str, templates: list[str], *, all_instances_labels: dict[str, str] | None
                    = None, zonal: bool = False) -> None:
        """How MIG `mig` (in region `where`, or zone `where` when `zonal`) makes instances."""
        self.managers[(where, mig)] = Manager(list(templates), dict(all_instances_labels or {}),
                                              zone=where if zonal else None)
        if not zonal:
            self.groups.setdefault((where, mig), [])

    def mark(self, name: str, action: str, *, status: str | None = None, shutdown_s: int | None = None,
             requested_at: float | None = None) -> float | None:
        """Set an instance's currentAction (any string), its instanceStatus, and a graceful shutdown window of
        `shutdown_s` seconds starting now (or `requested_at`); the end of that window, or None without one."""
        instance = self._instance(name)
        instance.action = action
        if status is not None:
            instance.status = status
        if shutdown_s is None:
            instance.shutdown = None
            self.deadlines.pop(name, None)
            return None
        start = time.time() if requested_at is None else requested_at
        instance.shutdown = {"requestTimestamp": rfc3339(start), "maxDuration": {"seconds": str(shutdown_s)}}
        self.deadlines[name] = start + shutdown_s
        return self.deadlines[name]

    def set_raw(self, name: str, **fields: Any) -> None:
        """Put any fields (malformed ones too) into an instance's JSON."""
        self._instance(name).extra.update(fields)

    def remove(self, name: str) -> None:
        for members in self.groups.values():
            members[:] = [m for m in members if m.name != name]

    def add_backend_service(self, name: str, groups: list[tuple[str, str]], *, region: str | None = None) -> None:
        """A backend service (global, or regional with `region`) whose backends are these (region, MIG) groups."""
        self.backend_services[(region, name)] = BackendService(name, region, list(groups))

    def check_readiness(self, name: str, url: str) -> None:
        """Probe `url` (the instance's /readyz) like GCP's health checker, from now on."""
        self._instance(name).readiness_url = url

    def set_health(self, name: str, state: str) -> None:
        self._set_health(self._instance(name), state)

    def health_of(self, name: str) -> str:
        return self._instance(name).health

    def fail_next(self, count: int, status: int = 500, *, retry_after: str | None = None, match: str = "") -> None:
        self.faults.append(Fault(count, status, retry_after=retry_after, match=match))

    def malformed_next(self, count: int, body: str = '{"managedInstances": [', match: str = "") -> None:
        self.faults.append(Fault(count, 200, body=body, match=match))

    def lists(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/listManagedInstances")]

    def health_checks(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/getHealth")]

    def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fault])
        base = "/compute/v1/projects/{project}/regions/{region}/instanceGroupManagers/{mig}/listManagedInstances"
        app.router.add_post(base, self._list)
        app.router.add_get("/compute/v1/projects/{project}/aggregated/instances", self._aggregated)
        app.router.add_post("/compute/v1/projects/{project}/global/backendServices/{service}/getHealth",
                            self._get_health)
        app.router.add_post("/compute/v1/projects/{project}/regions/{region}/backendServices/{service}/getHealth",
                            self._get_health)
        app.router.add_get("/compute/v1/projects/{project}/aggregated/instanceGroupManagers", self._managers)
        app.router.add_get("/compute/v1/projects/{project}/global/instanceTemplates/{name}", self._template)
        app.router.add_get("/compute/v1/projects/{project}/regions/{region}/instanceTemplates/{name}",
                           self._template)
        app.router.add_post("/token", self._token)
        app.on_startup.append(self._start_checker)
        return app

    async def _start_checker(self, _app: web.Application) -> None:
        """Once per fake, however many applications serve it (the box's gateway mounts it under two names)."""
        if self._checker is None or self._checker.done():
            self._checker = asyncio.get_running_loop().create_task(self._check_forever())

    async def _check_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.check_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                probed = [m for members in self.groups.values() for m in members if m.readiness_url]
                await asyncio.gather(*(self._probe(session, m) for m in probed))
                await asyncio.sleep(self.check_interval_s)

    async def _probe(self, session: aiohttp.ClientSession, instance: ManagedInstance) -> None:
        passed = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(instance.readiness_url) as response:
                passed = response.status == 200
        instance.passes, instance.fails = (instance.passes + 1, 0) if passed else (0, instance.fails + 1)
        if instance.fails >= self.unhealthy_threshold:
            self._set_health(instance, "UNHEALTHY")
        elif instance.passes >= self.healthy_threshold:
            self._set_health(instance, "HEALTHY")

    def _set_health(self, instance: ManagedInstance, state: str) -> None:
        if instance.health != state:
            instance.health = state
            self.health_changes.append((instance.name, state, time.time()))

    async def _get_health(self, request: web.Request) -> web.Response:
        region = request.match_info.get("region")
        service = self.backend_services.get((region, request.match_info["service"]))
        if request.match_info["project"] != self.project or service is None:
            message = f"The resource 'backendServices/{request.match_info['service']}' was not found"
            return web.json_response(google_error(404, "NOT_FOUND", message), status=404)
        try:
            group = (await request.json())["group"]
        except (ValueError, KeyError, TypeError):
            return _invalid("Required field 'group' not specified")
        backend = next((g for g in service.groups if group == self._group_url(*g)), None)
        if backend is None:
            return _invalid(f"Invalid value for field 'resource.group': '{group}'. Not a backend of the service.")
        listed = [m for m in self.groups.get(backend, []) if m.action not in OUT_OF_GROUP]
        body: dict[str, Any] = {"kind": "compute#backendServiceGroupHealth", "annotations": {}}
        if listed:
            body["healthStatus"] = [{"instance": self._instance_url(m), "ipAddress": m.network_ip, "port": 8080,
                                     "healthState": m.health} for m in listed]
        return web.json_response(body)

    def _group_url(self, region: str, mig: str) -> str:
        return f"{COMPUTE}/projects/{self.project}/regions/{region}/instanceGroups/{mig}"

    def _instance_url(self, instance: ManagedInstance) -> str:
        return f"{COMPUTE}/projects/{self.project}/zones/{instance.zone}/instances/{instance.name}"

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        body = (await request.read()).decode(errors="replace") if request.can_read_body else ""
        record = Request(request.method, request.path, dict(request.query), request.headers.get("Authorization", ""),
                         time.time(), body=body)
        self.requests.append(record)
        fault = next((f for f in self.faults if f.remaining > 0 and f.match in request.path_qs), None)
        response: web.StreamResponse
        if fault is not None and request.path != "/token":
            fault.remaining -= 1
            if fault.body is not None:
                response = web.Response(status=fault.status, text=fault.body, content_type="application/json")
            else:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                status = ERROR_STATUS.get(fault.status, "INTERNAL")
                response = web.json_response(google_error(fault.status, status, "injected fault"),
                                             status=fault.status, headers=headers)
        elif self.require_token and request.path != "/token" and record.authorization != f"Bearer {self.require_token}":
            response = web.json_response(google_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                                                      "credentials."), status=401)
        else:
            response = await handler(request)
        record.status = response.status
        return response

    async def _list(self, request: web.Request) -> web.Response:
        if request.match_info["project"] != self.project:
            return web.json_response(google_error(404, "NOT_FOUND", "project not found"), status=404)
        members = self.groups.get((request.match_info["region"], request.match_info["mig"]))
        if members is None:
            message = f"The resource 'instanceGroupManagers/{request.match_info['mig']}' was not found"
            return web.json_response(google_error(404, "NOT_FOUND", message), status=404)
        size = self.page_size or int(request.query.get("maxResults") or 500)
        offset = int(request.query.get("pageToken") or 0)
        page = members[offset:offset + size]
        body: dict[str, Any] = {"managedInstances": [self._render(m) for m in page]}
        if offset + size < len(members):
            body["nextPageToken"] = str(offset + size)
        return web.json_response(body)

    async def _aggregated(self, request: web.Request) -> web.Response:
        if request.match_info["project"] != self.project:
            return web.json_response(google_error(404, "NOT_FOUND", "project not found"), status=404)
        every = [m for members in self.groups.values() for m in members]
        size = self.page_size or int(request.query.get("maxResults") or 500)
        offset = int(request.query.get("pageToken") or 0)
        items: dict[str, Any] = {}
        for member in every[offset:offset + size]:
            items.setdefault(f"zones/{member.zone}", {"instances": []})["instances"].append(self._instance_json(member))
        items.setdefault("zones/europe-west9-z", {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}})
        body: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "items": items}
        if offset + size < len(every):
            body["nextPageToken"] = str(offset + size)
        return web.json_response(body)

    async def _managers(self, request: web.Request) -> web.Response:
        if request.match_info["project"] != self.project:
            return web.json_response(google_error(404, "NOT_FOUND", "project not found"), status=404)
        keys = list(dict.fromkeys([*self.groups, *self.managers]))
        size = self.page_size or int(request.query.get("maxResults") or 500)
        offset = int(request.query.get("pageToken") or 0)
        items: dict[str, Any] = {}
        for where, mig in keys[offset:offset + size]:
            manager = self.managers.get((where, mig)) or Manager([f"{COMPUTE}/projects/{self.project}/global/"
                                                                   "instanceTemplates/api-template-1"])
            scope = f"zones/{manager.zone}" if manager.zone else f"regions/{where}"
            items.setdefault(scope, {"instanceGroupManagers": []})["instanceGroupManagers"].append(
                self._manager_json(where, mig, manager))
        items.setdefault("regions/europe-west9", {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "none"}})
        body: dict[str, Any] = {"kind": "compute#instanceGroupManagerAggregatedList", "items": items}
        if offset + size < len(keys):
            body["nextPageToken"] = str(offset + size)
        return web.json_response(body)

    def _manager_json(self, where: str, mig: str, manager: Manager) -> dict[str, Any]:
        scope = f"zones/{manager.zone}" if manager.zone else f"regions/{where}"
        base = f"{COMPUTE}/projects/{self.project}/{scope}"
        ident = str(10**17 + zlib.crc32(f"{where}/{mig}".encode()))
        raw: dict[str, Any] = {
            "kind": "compute#instanceGroupManager", "name": mig, "id": ident,
            "selfLink": f"{base}/instanceGroupManagers/{mig}", "baseInstanceName": mig,
            "instanceTemplate": manager.templates[-1],
            "versions": [{"name": f"v{i}", "instanceTemplate": url} for i, url in enumerate(manager.templates)],
            "targetSize": len(self.groups.get((where, mig), [])),
        }
        raw["zone" if manager.zone else "region"] = f"{COMPUTE}/projects/{self.project}/{scope}"
        if manager.all_instances_labels:
            raw["allInstancesConfig"] = {"properties": {"labels": dict(manager.all_instances_labels)}}
        return raw

    async def _template(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/compute/v1/")
        found = self.templates.get(path)
        if found is None or request.match_info["project"] != self.project:
            message = f"The resource '{path}' was not found"
            return web.json_response(google_error(404, "NOT_FOUND", message), status=404)
        return web.json_response(found)

    def _instance_json(self, instance: ManagedInstance) -> dict[str, Any]:
        zone = f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{instance.zone}"
        nic: dict[str, Any] = {"name": "nic0", "network": "global/networks/api"}
        if instance.network_ip:
            nic["networkIP"] = instance.network_ip
        status = "PROVISIONING" if not instance.network_ip else instance.status
        return {"kind": "compute#instance", "name": instance.name, "id": instance.id, "zone": zone,
                "status": status, "networkInterfaces": [nic]}

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.token_grants.append({key: str(value) for key, value in form.items()})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        token = self.require_token or f"ya29.{uuid.uuid4().hex}"
        return web.json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _render(self, instance: ManagedInstance) -> dict[str, Any]:
        url = (f"https://www.googleapis.com/compute/v1/projects/{self.project}/zones/{instance.zone}/instances/"
               f"{instance.name}")
        raw: dict[str, Any] = {"instance": url, "id": instance.id, "name": instance.name,
                               "instanceStatus": instance.status, "currentAction": instance.action,
                               "version": {"instanceTemplate": "api-template-1"}}
        if instance.shutdown is not None:
            raw["shutdownDetails"] = json.loads(json.dumps(instance.shutdown))
        raw.update(instance.extra)
        return raw

    def _instance(self, name: str) -> ManagedInstance:
        for members in self.groups.values():
            for member in members:
                if member.name == name:
                    return member
        raise KeyError(name)
