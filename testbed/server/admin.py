"""The admin port: drain and status, what the node agent and the controller call on the reference server.

Every route requires `Authorization: Bearer <token>` (constant-time comparison); anything else is refused
with 401 before the route runs, so an unauthenticated drain changes nothing. The token is never logged.

    POST /admin/drain   {"rate_per_s": R}  -> 202 {"accepted": true, "open_sockets": N, "rate_per_s": R}
    POST /admin/not-ready                  -> 202 {"accepted": true, "ready": false, "open_sockets": N}
                                              (`/readyz` 503, sockets still served and admitted: the load
                                              balancer's health checks take the server out; "ready": true
                                              when the server ignored it, fault ignore-drain)
    GET  /admin/status                     -> 200 {"name", "draining", "open_sockets", "fault", "drain_rate_per_s"}
"""

from __future__ import annotations

import hmac
import json
import math

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from testbed.server.draining import Drainer
from testbed.server.options import Fault
from testbed.server.sockets import OpenSockets


def admin_app(
    *, name: str, token: str, fault: Fault | None, drainer: Drainer, sockets: OpenSockets
) -> web.Application:
    """The admin application; `token` is the bearer token every route requires."""
    routes = _AdminRoutes(name=name, fault=fault, drainer=drainer, sockets=sockets)
    app = web.Application(middlewares=[_bearer_auth(token)])
    app.router.add_post("/admin/drain", routes.drain)
    app.router.add_post("/admin/not-ready", routes.not_ready)
    app.router.add_get("/admin/status", routes.status)
    return app


def _bearer_auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    return bearer_auth


class _AdminRoutes:
    def __init__(self, *, name: str, fault: Fault | None, drainer: Drainer, sockets: OpenSockets) -> None:
        self.name = name
        self.fault = fault
        self.drainer = drainer
        self.sockets = sockets

    async def drain(self, request: web.Request) -> web.Response:
        try:
            rate_per_s = _rate_per_s(await request.read())
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.drainer.request(rate_per_s)
        body = {"accepted": True, "open_sockets": len(self.sockets), "rate_per_s": rate_per_s}
        return web.json_response(body, status=202)

    async def not_ready(self, request: web.Request) -> web.Response:
        self.drainer.leave_rotation()
        body = {"accepted": True, "ready": self.drainer.ready, "open_sockets": len(self.sockets)}
        return web.json_response(body, status=202)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": self.name,
                "draining": self.drainer.draining,
                "open_sockets": len(self.sockets),
                "fault": None if self.fault is None else self.fault.value,
                "drain_rate_per_s": self.drainer.rate_per_s,
            }
        )


def _rate_per_s(body: bytes) -> float:
    """The `rate_per_s` of a drain request: a positive finite number, else ValueError with the reason."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body must be JSON like {{\"rate_per_s\": 200}}: {exc}") from exc
    rate = data.get("rate_per_s") if isinstance(data, dict) else None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"rate_per_s must be a positive number, got {rate!r}")
    return float(rate)
