"""Every HTTP request on the main port, before any WebSocket opens: plain GET routes and socket admission.

Runs as the `websockets` `process_request` hook, so the library does all HTTP parsing and framing. Admission
order: wrong path 404, wrong `vsn` 400, no token 401 (fatal for clients), draining 503 without
`Retry-After`, rate limited 503 with `Retry-After: 1`; the two 503s differ only in that header, which is how
a client tells "go elsewhere" from "slow down".
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from testbed import phoenix
from testbed.server.draining import Drainer
from testbed.server.limiting import ConnectLimiter, client_ip, token_hash
from testbed.server.metrics import ServerMetrics


class Admission:
    """The `process_request` hook: answers /healthz, /readyz, /metrics; admits or refuses socket handshakes."""

    def __init__(self, *, metrics: ServerMetrics, drainer: Drainer, limiter: ConnectLimiter) -> None:
        self.metrics = metrics
        self.drainer = drainer
        self.limiter = limiter

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if url.path == "/readyz":
            if not self.drainer.ready:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
            return connection.respond(HTTPStatus.OK, "ready\n")
        if url.path == "/metrics":
            return self._metrics(connection)
        if url.path != phoenix.SOCKET_PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return self._admit(connection, request, parse_qs(url.query))

    def _admit(self, connection: ServerConnection, request: Request, query: dict[str, list[str]]) -> Response | None:
        if query.get("vsn", [""])[0] != phoenix.VSN:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"unsupported vsn: expected {phoenix.VSN}\n")
        token = query.get("token", [""])[0]
        if not token:
            self.metrics.rejected_connect("unauthorized")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "missing token\n")
        if self.drainer.draining:
            self.metrics.rejected_connect("draining")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, phoenix.DRAINING_BODY)
        forwarded_for = request.headers.get_all("X-Forwarded-For")
        ip = client_ip(_peer_host(connection), forwarded_for[0] if forwarded_for else None)
        if not self.limiter.allow((ip, token_hash(token)), asyncio.get_running_loop().time()):
            self.metrics.rejected_connect("rate_limited")
            response = connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "rate limited\n")
            response.headers["Retry-After"] = "1"
            return response
        return None

    def _metrics(self, connection: ServerConnection) -> Response:
        response = connection.respond(HTTPStatus.OK, self.metrics.exposition().decode("utf-8"))
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def _peer_host(connection: ServerConnection) -> str:
    address = connection.remote_address
    return str(address[0]) if address else ""
