"""The controller's HTTP API: how the on-call CLI and the testbed supervisor reach a running controller.

A bearer token is required on every route but `/healthz` (constant-time comparison); a request without it
gets 401 `{"error": "unauthorized"}` before anything else happens. Errors are JSON `{"error": message}`.

    GET  /healthz                          200 {"status": "ok"}                                  (no token)
    GET  /metrics                          the engine's registry (Prometheus text)
    POST /v1/drains {"instance", "deadline_s"?, "rate_per_s"?, "dry_run"?, "request_id"?}
                                           202 {"disposition", "drain", "not_applied": [...]}
                                           dry run: 200 {"dry_run": {...}}
    POST /v1/events {"instance", "kind", "not_after", "id", "source": "local"}
                                           202 {"disposition", "drain"}     (a local notice, pushed)
    GET  /v1/instances                     200 {"instances": [status, ...]}
    GET  /v1/instances/{name}              200 status
    POST /v1/instances/{name}/reset {"request_id"?}
                                           200 {"instance", "done", "reset", "why", "drain"}
    POST /v1/instances/{name}/cancel {"request_id"?}
                                           200 {"instance", "what", "drain"}; 409 too late (a reset began)
    GET  /v1/history?limit=N&instance=I    200 {"drains": [drain, ...]}       (most recent first)
    GET  /v1/drains/{id}                   200 {"drain", "journal": [line, ...]}

    400 bad body or query, 404 unknown instance or drain, 409 manual drains disabled or a refused cancel,
    503 not the leader or a temporary failure (with Retry-After), 500 anything else.

The JSON shapes are in `shapes`, the request bodies in `bodies`, the handlers in `routes`.
"""

from __future__ import annotations

from controller.api.routes import build_app

__all__ = ["build_app"]
