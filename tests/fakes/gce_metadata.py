"""A wire-level fake of the GCE metadata server on loopback: the guest's preemption and maintenance notices.

It speaks the documented shapes (cloud.google.com/compute/docs/metadata/querying-metadata, .../
getting-live-migration-notice, .../instances/create-use-preemptible#detecting_if_an_instance_was_preempted):

    GET /computeMetadata/v1/instance/preempted             header `Metadata-Flavor: Google` (else 403)
    GET /computeMetadata/v1/instance/maintenance-event     text/plain: TRUE/FALSE; NONE/MIGRATE_ON_HOST_MAINTENANCE/
                                                           TERMINATE_ON_HOST_MAINTENANCE
        ?wait_for_change=true&last_etag=E&timeout_sec=N    a hanging GET: answers at once if the value's ETag is
                                                           not E, else when the value changes or after N seconds
        answers carry `ETag` and `Metadata-Flavor: Google`
    GET /computeMetadata/v1/instance/service-accounts/default/token   {"access_token", "expires_in", "token_type"}
    GET /computeMetadata/v1/instance/service-accounts/default/?recursive=true   {"email", "scopes", "aliases"}
    GET /                                                  `Metadata-Flavor: Google` (google-auth's "on GCE?" ping)
    GET /computeMetadata/v1/instance/name, .../id, .../zone (`projects/<number>/zones/<zone>`),
        .../hostname (`<name>.<zone>.c.<project>.internal`), .../network-interfaces/0/ip,
        .../service-accounts/default/email, .../attributes/<key>        text/plain, like the values above
    GET /computeMetadata/v1/project/project-id, .../project/numeric-project-id, .../universe/universe-domain

Faults: `fail_next(n, status, key)` (500, 503...), and any value (garbage, unknown maintenance kinds) via `set`.
`flips` records when each value changed, so a test can measure how fast the agent reacted.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PREFIX = "/computeMetadata/v1/instance/"


def etag(key: str, version: int, value: str) -> str:
    return hashlib.sha256(f"{key}|{version}|{value}".encode()).hexdigest()[:16]


@dataclass
class Fault:
    remaining: int
    status: int
    key: str


@dataclass
class Value:
    text: str
    version: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def etag(self) -> str:
        return etag("", self.version, self.text)


PROJECT_NUMBER = "123456789012"


class FakeMetadata:
    """One VM's metadata server. The identity (`name`, `zone`, `project`, `email`, `ip`) is what the instance
    paths answer; tests/box/linklocal.py serves one per VM, told apart by the caller's address."""

    def __init__(self, *, name: str = "instance-1", zone: str = "us-central1-a", project: str = "proj",
                 email: str = "api-fleet@proj.iam.gserviceaccount.com", ip: str = "10.128.0.2",
                 attributes: dict[str, str] | None = None) -> None:
        self.values: dict[str, Value] = {"preempted": Value("FALSE"), "maintenance-event": Value("NONE")}
        self.email = email
        self.project = project
        self.access_token = "ya29.metadata-token"
        """The token `service-accounts/default/token` issues."""
        self.values.update({
            "name": Value(name), "id": Value(str(int(etag(project, 0, f"{zone}/{name}"), 16) % 10**19)),
            "zone": Value(f"projects/{PROJECT_NUMBER}/zones/{zone}"),
            "hostname": Value(f"{name}.{zone}.c.{project}.internal"), "network-interfaces/0/ip": Value(ip),
            "service-accounts/default/email": Value(email),
        })
        for key, text in (attributes or {}).items():
            self.values[f"attributes/{key}"] = Value(text)
        self.flips: list[tuple[str, str, float]] = []
        """(key, new value, unix time) of every change."""
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.waiting = 0
        """Hanging GETs open right now."""

    # --- test controls -----------------------------------------------------------------------------------

    def set(self, key: str, text: str) -> float:
        """Change a value (waking every hanging GET on it); the time of the change."""
        value = self.values[key]
        at = time.time()
        value.text, value.version = text, value.version + 1
        self.flips.append((key, text, at))
        value.changed.set()
        value.changed = asyncio.Event()
        return at

    def fail_next(self, count: int, status: int = 500, key: str = "") -> None:
        self.faults.append(Fault(count, status, key))

    def close(self) -> None:
        for value in self.values.values():
            value.changed.set()

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self, into: web.Application | None = None) -> web.Application:
        """The fake's routes, on a new application or `into` (tests/box/linklocal.py mounts several)."""
        app = web.Application() if into is None else into
        app.router.add_get(PREFIX + "service-accounts/default/token", self._token)
        app.router.add_get(PREFIX + "service-accounts/default/", self._account)
        app.router.add_get(PREFIX + "{key}", self._get)
        app.router.add_get(PREFIX + "{key:.+}", self._get)
        app.router.add_get("/computeMetadata/v1/project/{key}", self._project)
        app.router.add_get("/computeMetadata/v1/universe/universe-domain", self._universe)
        app.router.add_get("/", self._root)
        return app

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="computeMetadata/\n", headers={"Metadata-Flavor": "Google"})

    async def _account(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        account = {"aliases": ["default"], "email": self.email,
                   "scopes": ["https://www.googleapis.com/auth/compute.readonly"]}
        return web.json_response(account, headers={"Metadata-Flavor": "Google"})

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        return web.json_response({"access_token": self.access_token, "expires_in": 3599, "token_type": "Bearer"},
                                 headers={"Metadata-Flavor": "Google"})

    async def _universe(self, request: web.Request) -> web.Response:
        """google-auth asks which universe the VM is in (googleapis.com: Google Cloud's public one)."""
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        return web.Response(text="googleapis.com", headers={"Metadata-Flavor": "Google"})

    async def _project(self, request: web.Request) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        values = {"project-id": self.project, "numeric-project-id": PROJECT_NUMBER}
        text = values.get(request.match_info["key"])
        if text is None:
            return web.Response(status=404, text="not found")
        return web.Response(text=text, headers={"Metadata-Flavor": "Google"})

    async def _get(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        record = {"key": key, "query": dict(request.query), "at": time.time(), "status": 0}
        self.requests.append(record)
        response = await self._answer(request, key)
        record["status"] = response.status
        return response

    async def _answer(self, request: web.Request, key: str) -> web.Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="Missing Metadata-Flavor:Google header.")
        value = self.values.get(key)
        if value is None:
            return web.Response(status=404, text="not found")
        fault = next((f for f in self.faults if f.remaining > 0 and f.key in ("", key)), None)
        if fault is not None:
            fault.remaining -= 1
            return web.Response(status=fault.status, text="injected fault")
        if request.query.get("wait_for_change") == "true" and request.query.get("last_etag") == value.etag:
            timeout_s = float(request.query.get("timeout_sec") or 3600)
            self.waiting += 1
            try:
                await asyncio.wait_for(value.changed.wait(), timeout_s)
            except TimeoutError:
                pass
            finally:
                self.waiting -= 1
            value = self.values[key]
        return web.Response(text=value.text, headers={"ETag": value.etag, "Metadata-Flavor": "Google"})
