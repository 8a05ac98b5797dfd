"""A wire-level fake of Azure's Instance Metadata Service on loopback: Scheduled Events, as the agent uses them.

It speaks the documented shapes (learn.microsoft.com/azure/virtual-machines/linux/scheduled-events):

    GET  /metadata/scheduledevents?api-version=2020-07-01      header `Metadata: true` (else 400)
         -> 200 {"DocumentIncarnation": N, "Events": [{"EventId", "EventType", "ResourceType": "VirtualMachine",
                 "Resources": [names], "EventStatus": "Scheduled"|"Started", "NotBefore": RFC 1123 or "",
                 "Description", "EventSource": "Platform"|"User", "DurationInSeconds": N}]}
    POST /metadata/scheduledevents?api-version=2020-07-01      {"StartRequests": [{"EventId": "..."}]}
         -> 200; the approved events become "Started" (NotBefore ""), DocumentIncarnation moves on

    GET  /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R[&client_id=C]   header `Metadata: true`
         -> 200 {"access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before",
                 "resource", "token_type": "Bearer"}        (the managed identity's token, as azure-identity reads it)

    GET  /metadata/instance?api-version=V, /metadata/instance/compute?api-version=V    header `Metadata: true`
         -> 200 {"compute": {"name": "<scale set>_<instance id>", "osProfile": {"computerName": ...},
                 "userData": base64, "customData": "", "vmScaleSetName", "resourceGroupName", "subscriptionId",
                 "location", "vmId", "resourceId", "zone", "osType": "Linux", ...}, "network": {...}}
         (`customData` is always "": IMDS stopped serving it, cloud-init reads it from the provisioning media;
         the fake keeps it in `custom_data` for the harness that plays cloud-init)
    GET  /metadata/instance/compute/<leaf>?api-version=V&format=text    the leaf as text (userData: base64);
         without format=text, 400 as IMDS does for leaves
    The identity endpoint, with `client_ids` set: only those user-assigned identities (a `client_id` of none
    of them, or none given while there are several: 400 invalid_request "Identity not found"); with
    `jwt_tokens`, each token is an (unsigned) JWT whose `aud` is the resource asked for.

Every change of the document moves `DocumentIncarnation`. Faults: `fail_next(n, status, retry_after)` (500,
429...), `malformed_next(n)` (a 200 whose body is not JSON), `raw_event(...)` (anything as an event: unknown
EventTypes, missing fields). Every StartRequests body is recorded with its arrival time (`start_requests`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web

from tests.fakes.refusals import unsigned_jwt

API_VERSION = "2020-07-01"
INSTANCE_API_VERSIONS = frozenset({
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-12-01", "2018-02-01", "2018-04-02", "2018-10-01", "2019-02-01",
    "2019-03-11", "2019-04-30", "2019-06-01", "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01",
    "2020-07-15", "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01", "2021-05-01",
    "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13", "2023-07-01",
})
"""The instance endpoint's versions (learn.microsoft.com/azure/virtual-machines/instance-metadata-service)."""


def rfc1123(unix_s: float) -> str:
    """`Mon, 19 Sep 2016 18:29:47 GMT`, the NotBefore format."""
    return formatdate(unix_s, usegmt=True)


@dataclass
class Fault:
    remaining: int
    status: int
    retry_after: str | None = None
    body: str | None = None
    method: str | None = None


@dataclass
class StartRequest:
    event_ids: list[str]
    at: float
    status: int


class FakeImds:
    """One VM's IMDS. The identity (`name`, `computer_name`, `user_data`, `client_ids`...) is what the instance
    and identity endpoints answer; tests/box/linklocal.py serves one per VM, told apart by the caller's address."""

    def __init__(self, *, name: str = "api_0", computer_name: str = "api000000", user_data: str = "",
                 custom_data: str = "", client_ids: list[str] | None = None, scale_set: str = "",
                 resource_group: str = "rg", subscription: str = "00000000-0000-0000-0000-000000000000",
                 location: str = "centralus", private_ip: str = "10.1.0.4") -> None:
        self.compute: dict[str, Any] = {
            "azEnvironment": "AzurePublicCloud", "customData": "", "location": location, "name": name,
            "offer": "debian-12", "osProfile": {"adminUsername": "azureuser", "computerName": computer_name,
                                                "disablePasswordAuthentication": "true"},
            "osType": "Linux", "provider": "Microsoft.Compute", "publisher": "Debian",
            "resourceGroupName": resource_group,
            "resourceId": _resource_id(subscription, resource_group, scale_set, name),
            "sku": "12-gen2", "subscriptionId": subscription, "tags": "", "tagsList": [], "userData": user_data,
            "version": "latest", "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription}/{name}")),
            "vmScaleSetName": scale_set, "vmSize": "Standard_D2s_v5", "zone": "",
        }
        """The `compute` document (any field can be changed by a test)."""
        self.private_ip = private_ip
        self.custom_data = custom_data
        """The VM's customData (base64), as ARM was given it: for the harness, never served by IMDS."""
        self.client_ids = list(client_ids or [])
        """The user-assigned identities' client ids; empty: any client id is accepted (the old behaviour)."""
        self.incarnation = 1
        self.events: list[dict[str, Any]] = []
        self.not_before: dict[str, float] = {}
        """EventId -> its NotBefore in unix seconds (as scheduled)."""
        self.start_requests: list[StartRequest] = []
        self.polls: list[float] = []
        """Arrival time of every GET."""
        self.faults: list[Fault] = []
        self.refused: list[str] = []
        """Why requests were refused (missing header, api-version)."""
        self.identity_token = "eyJ0eXAi.fake-arm-token"
        """The access token the identity endpoint issues (unless `jwt_tokens`)."""
        self.jwt_tokens = False
        """Issue per-token JWTs instead (claims `aud` = the resource asked for, `appid` = the client id,
        `xms_mirid`), so the data-plane fakes can refuse a token minted for another resource."""
        self.token_requests: list[dict[str, str]] = []

    # --- test controls -----------------------------------------------------------------------------------

    def schedule(self, event_type: str, resources: list[str], *, not_before_s: float, event_id: str | None = None,
                 source: str = "Platform", duration_s: int = -1) -> str:
        """Schedule an event `not_before_s` seconds from now; its EventId."""
        ident = event_id or str(uuid.uuid4()).upper()
        not_before = time.time() + not_before_s
        self.not_before[ident] = not_before
        self.raw_event({"EventId": ident, "EventType": event_type, "ResourceType": "VirtualMachine",
                        "Resources": list(resources), "EventStatus": "Scheduled", "NotBefore": rfc1123(not_before),
                        "Description": f"{event_type} scheduled by the fake", "EventSource": source,
                        "DurationInSeconds": duration_s})
        return ident

    def raw_event(self, event: Any) -> None:
        self.events.append(event)
        self.incarnation += 1

    def remove(self, event_id: str) -> None:
        self.events = [e for e in self.events if not (isinstance(e, dict) and e.get("EventId") == event_id)]
        self.incarnation += 1

    def fail_next(self, count: int, status: int = 500, *, retry_after: str | None = None,
                  method: str | None = "GET") -> None:
        self.faults.append(Fault(count, status, retry_after=retry_after, method=method))

    def malformed_next(self, count: int, body: str = '{"DocumentIncarnation": 7, "Events": [') -> None:
        self.faults.append(Fault(count, 200, body=body, method="GET"))

    def approved(self, event_id: str) -> list[StartRequest]:
        """StartRequests bodies (answered 200) that named `event_id`."""
        return [r for r in self.start_requests if event_id in r.event_ids and r.status == 200]

    def close(self) -> None:
        return None

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self, into: web.Application | None = None) -> web.Application:
        """The fake's routes, on a new application or `into` (tests/box/linklocal.py mounts several)."""
        app = web.Application() if into is None else into
        app.router.add_get("/metadata/scheduledevents", self._get)
        app.router.add_post("/metadata/scheduledevents", self._post)
        app.router.add_get("/metadata/identity/oauth2/token", self._token)
        app.router.add_get("/metadata/instance", self._instance)
        app.router.add_get("/metadata/instance/compute", self._instance)
        app.router.add_get("/metadata/instance/compute/{leaf:.+}", self._leaf)
        return app

    def _instance_refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Metadata", "").lower() != "true":
            self.refused.append("Metadata header")
            return web.json_response({"error": "Bad request. Required metadata header not specified"}, status=400)
        if request.query.get("api-version") not in INSTANCE_API_VERSIONS:
            self.refused.append("api-version")
            return web.json_response({"error": "Bad request. api-version is invalid or was not specified in the "
                                      "request.", "newest-versions": sorted(INSTANCE_API_VERSIONS)[-3:]},
                                     status=400)
        return None

    def _document(self) -> dict[str, Any]:
        address = {"privateIpAddress": self.private_ip, "publicIpAddress": ""}
        interface = {"ipv4": {"ipAddress": [address], "subnet": [{"address": "10.1.0.0", "prefix": "24"}]},
                     "ipv6": {"ipAddress": []}, "macAddress": "000D3A000000"}
        return {"compute": self.compute, "network": {"interface": [interface]}}

    async def _instance(self, request: web.Request) -> web.Response:
        refused = self._instance_refusal(request)
        if refused is not None:
            return refused
        document = self._document()
        return web.json_response(document["compute"] if request.path.endswith("/compute") else document)

    async def _leaf(self, request: web.Request) -> web.Response:
        refused = self._instance_refusal(request)
        if refused is not None:
            return refused
        value: Any = self.compute
        for part in request.match_info["leaf"].strip("/").split("/"):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return web.json_response({"error": "Not found"}, status=404)
        if isinstance(value, dict | list):
            return web.json_response(value)
        if request.query.get("format") != "text":
            return web.json_response({"error": "Bad request. Leaf nodes only support text format; use format=text"},
                                     status=400)
        return web.Response(text=str(value))

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        if request.headers.get("Metadata", "").lower() != "true":
            return web.json_response({"error": "invalid_request", "error_description": "Required metadata header not "
                                      "specified"}, status=400)
        resource = request.query.get("resource")
        if request.query.get("api-version") != "2018-02-01" or not resource:
            return web.json_response({"error": "invalid_request", "error_description": "resource and api-version "
                                      "are required"}, status=400)
        client_id = request.query.get("client_id") or (self.client_ids[0] if len(self.client_ids) == 1 else "")
        if self.client_ids and client_id not in self.client_ids:
            return web.json_response({"error": "invalid_request", "error_description": "Identity not found"},
                                     status=400)
        now = int(time.time())
        token = self.identity_token
        if self.jwt_tokens:
            token = unsigned_jwt({"aud": resource, "appid": client_id or "00000000-fake", "iat": now, "nbf": now,
                                  "exp": now + 86399, "xms_mirid": self.compute["resourceId"],
                                  "iss": "https://sts.windows.net/72f988bf-0000-4000-8000-00000000fa4e/"})
        return web.json_response({"access_token": token, "client_id": client_id or "00000000-fake",
                                  "expires_in":
                                  "86399", "expires_on": str(now + 86399), "ext_expires_in": "86399",
                                  "not_before": str(now), "resource": resource, "token_type": "Bearer"})

    def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Metadata", "").lower() != "true":
            self.refused.append("Metadata header")
            return web.json_response({"error": "Bad request. Required metadata header not specified"}, status=400)
        if request.query.get("api-version") != API_VERSION:
            self.refused.append("api-version")
            return web.json_response({"error": "Bad request. api-version is invalid or was not specified"},
                                     status=400)
        return None

    def _fault(self, method: str) -> web.Response | None:
        fault = next((f for f in self.faults if f.remaining > 0 and f.method in (None, method)), None)
        if fault is None:
            return None
        fault.remaining -= 1
        if fault.body is not None:
            return web.Response(status=fault.status, text=fault.body, content_type="application/json")
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
        return web.json_response({"error": "Internal server error (injected)"}, status=fault.status, headers=headers)

    async def _get(self, request: web.Request) -> web.Response:
        self.polls.append(time.time())
        refused = self._refusal(request) or self._fault("GET")
        if refused is not None:
            return refused
        return web.json_response({"DocumentIncarnation": self.incarnation, "Events": self.events})

    async def _post(self, request: web.Request) -> web.Response:
        at = time.time()
        refused = self._refusal(request) or self._fault("POST")
        ids = _event_ids(await request.read())
        if refused is not None:
            self.start_requests.append(StartRequest(ids, at, refused.status))
            return refused
        known = {e.get("EventId") for e in self.events if isinstance(e, dict)}
        if not ids or any(ident not in known for ident in ids):
            self.start_requests.append(StartRequest(ids, at, 400))
            return web.json_response({"error": "Bad request. Unknown EventId"}, status=400)
        self.start_requests.append(StartRequest(ids, at, 200))
        for event in self.events:
            if isinstance(event, dict) and event.get("EventId") in ids:
                event["EventStatus"], event["NotBefore"] = "Started", ""
        self.incarnation += 1
        return web.Response(status=200)


def _resource_id(subscription: str, group: str, scale_set: str, name: str) -> str:
    base = f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/"
    if scale_set:
        return f"{base}virtualMachineScaleSets/{scale_set}/virtualMachines/{name.rsplit('_', 1)[-1]}"
    return f"{base}virtualMachines/{name}"


def _event_ids(raw: bytes) -> list[str]:
    try:
        body = json.loads(raw)
        return [str(item["EventId"]) for item in body["StartRequests"]]
    except (ValueError, KeyError, TypeError):
        return []

