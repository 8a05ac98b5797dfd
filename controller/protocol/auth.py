"""Bearer-token authentication for drainctl's HTTP servers (the node agent and the controller API).

One implementation on purpose: the agent can cut every connection on its host, so the check that guards it is
written, reviewed and tested once. The token is compared in constant time (`hmac.compare_digest`) against the
whole `Authorization` header; a refused request gets 401 `{"error": "unauthorized"}` and reaches no handler.
A narrower token may be accepted on a few paths as well (`scoped`: the agents' push token, on the push route
only): it opens nothing else.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware

PUBLIC_PATHS = frozenset({"/healthz"})
"""Routes a load balancer or supervisor probes without a token; nothing else is public."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(
    token: str, *, public_paths: Collection[str] = PUBLIC_PATHS, scoped: Mapping[str, str] | None = None
) -> Middleware:
    """aiohttp middleware: every route but `public_paths` needs `Authorization: Bearer <token>`; a path of
    `scoped` (path -> token) takes its own token too."""
    expected = f"Bearer {token}".encode()
    narrower = {path: f"Bearer {other}".encode() for path, other in (scoped or {}).items()}

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public_paths:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        accepted = hmac.compare_digest(given, expected)
        other = narrower.get(request.path)
        if other is not None:
            accepted = hmac.compare_digest(given, other) or accepted
        if not accepted:
            return web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    return check
