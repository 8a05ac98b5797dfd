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

    GET  /metadata/instance/compute?api-version=2021-02-01       header `Metadata: true`
         -> 200 {"name": "<scale set>_<instance id>", "vmScaleSetName", "resourceGroupName", "subscriptionId", ...}
            (instance metadata, compute part); 404 while `compute_name` is None (as before it was served)

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

API_VERSION = "2020-07-01"


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
    def __init__(self) -> None:
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
        """The access token the identity endpoint issues."""
        self.token_requests: list[dict[str, str]] = []
        self.compute_name: str | None = None
        """The VM's name in `/metadata/instance/compute`; None: that path is not served (404)."""
        self.compute_failures = 0
        """Answer the next this many compute requests with a 500 (then serve it)."""
        self.compute_requests = 0

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

    def set_compute(self, name: str, *, failures: int = 0) -> None:
        """Serve `/metadata/instance/compute` with this VM name, after `failures` answers of 500."""
        self.compute_name, self.compute_failures = name, failures

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

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metadata/scheduledevents", self._get)
        app.router.add_post("/metadata/scheduledevents", self._post)
        app.router.add_get("/metadata/identity/oauth2/token", self._token)
        app.router.add_get("/metadata/instance/compute", self._compute)
        return app

    async def _compute(self, request: web.Request) -> web.Response:
        self.compute_requests += 1
        if request.headers.get("Metadata", "").lower() != "true":
            return web.json_response({"error": "Bad request. Required metadata header not specified"}, status=400)
        if not request.query.get("api-version"):
            return web.json_response({"error": "Bad request. api-version was not specified"}, status=400)
        if self.compute_name is None:
            return web.json_response({"error": "Not found"}, status=404)
        if self.compute_failures > 0:
            self.compute_failures -= 1
            return web.json_response({"error": "Internal server error (injected)"}, status=500)
        scale_set, _, _ = self.compute_name.rpartition("_")
        return web.json_response({"name": self.compute_name, "vmScaleSetName": scale_set, "osType": "Linux",
                                  "resourceGroupName": "drainctl-fake", "subscriptionId": "00000000-fake"})

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        if request.headers.get("Metadata", "").lower() != "true":
            return web.json_response({"error": "invalid_request", "error_description": "Required metadata header not "
                                      "specified"}, status=400)
        resource = request.query.get("resource")
        if request.query.get("api-version") != "2018-02-01" or not resource:
            return web.json_response({"error": "invalid_request", "error_description": "resource and api-version "
                                      "are required"}, status=400)
        now = int(time.time())
        return web.json_response({"access_token": self.identity_token, "client_id": "00000000-fake", "expires_in":
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


def _event_ids(raw: bytes) -> list[str]:
    try:
        body = json.loads(raw)
        return [str(item["EventId"]) for item in body["StartRequests"]]
    except (ValueError, KeyError, TypeError):
        return []

