"""Bearer-token authentication for drainctl's HTTP servers (the node agent and the controller API).

One implementation on purpose: the agent can cut every connection on its host, so the check that guards it is
written, reviewed and tested once. The token is compared in constant time (`hmac.compare_digest`) against the
whole `Authorization` header; a refused request gets 401 `{"error": "unauthorized"}` and reaches no handler.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

PUBLIC_PATHS = frozenset({"/healthz"})
"""Routes a load balancer or supervisor probes without a token; nothing else is public."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(token: str, *, public_paths: Collection[str] = PUBLIC_PATHS) -> Middleware:
    """aiohttp middleware: every route but `public_paths` needs `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if request.path not in public_paths and not hmac.compare_digest(given, expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    return check
