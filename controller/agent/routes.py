"""The agent's HTTP API (DESIGN.md §6): a bearer token on every route but /healthz, compared in constant time.

    GET  /healthz                      200 {"status": "ok"}                       (no token)
    POST /v1/not-ready                 202 {"ready": false, "hook": true}         502 app unreachable, 504 timeout
    POST /v1/drain {"rate_per_s": R}   202 {"accepted": true, "app": {...}}       502 app unreachable, 504 timeout
    GET  /v1/connections               200 {"port": P, "established": N}          (kernel count)
    POST /v1/reset                     200 {"port": P, "reset": N}                (kernel socket destroy)
    POST /v1/notices {"id","kind","not_after"}  201 notice                        (idempotent by id)
    GET  /v1/notices                   200 {"notices": [notice, ...]}
    GET  /v1/notices/{id}              200 notice, 404 unknown
    POST /v1/notices/{id}/release      200 notice, 404 unknown
    POST /v1/shutdown-hold {"window_s"?}  200 {"outcome", "held_s", "notices"}: blocks until every open
                                       notice is released (opening one if none is), at most window_s (holding.py)
    POST /v1/shutdown-hold {"notice_id", "window_s"? | "not_after"?}  the same for that one notice, opened with
                                       that id (Kubernetes preStop: the pod uid), due at not_after or now+window_s
    GET  /metrics                      Prometheus text

Errors are JSON `{"error": "..."}`; the agent's own temporary failures (`ss` timed out, IMDS 5xx) are 503 with
`Retry-After` (seconds, at least 1), which the controller's client honours before retrying; a missing or wrong
token gets 401 before anything else happens. Paths and bodies are those of the wire protocol
(controller/protocol/agent.py), which the controller's client reads too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from controller.agent.apphook import AppRejected, AppTimeout, AppUnreachable
from controller.agent.holding import hold
from controller.agent.node import NodeAgent
from controller.agent.notices import Notice
from controller.core import logs
from controller.core.clocks import SystemClock
from controller.core.errors import DrainctlError, TemporaryError
from controller.protocol import agent as wire
from controller.protocol.auth import bearer_token

_AGENT: web.AppKey[NodeAgent] = web.AppKey("agent", NodeAgent)
_HOLD_WINDOW_S: web.AppKey[float] = web.AppKey("hold_window_s", float)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)


def build_app(agent: NodeAgent, token: str, *, hold_window_s: float = 90.0) -> web.Application:
    app = web.Application(middlewares=[bearer_token(token), _drain_lines, _errors_as_json])
    app[_AGENT] = agent
    app[_HOLD_WINDOW_S] = hold_window_s
    app.router.add_get(wire.HEALTHZ, _healthz)
    app.router.add_post(wire.DRAIN, _drain)
    app.router.add_post(wire.NOT_READY, _not_ready)
    app.router.add_get(wire.CONNECTIONS, _connections)
    app.router.add_post(wire.RESET, _reset)
    app.router.add_post(wire.NOTICES, _add_notice)
    app.router.add_get(wire.NOTICES, _notices)
    app.router.add_get(wire.NOTICE, _notice)
    app.router.add_post(wire.NOTICE_RELEASE, _release)
    app.router.add_post(wire.SHUTDOWN_HOLD, _shutdown_hold)
    app.router.add_get(wire.METRICS, _metrics)
    return app


@web.middleware
async def _drain_lines(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The controller's drain id (`DRAIN_ID_HEADER`) on every log line of the request; ignored unless digits."""
    drain_id = request.headers.get(wire.DRAIN_ID_HEADER, "")
    if not (drain_id.isascii() and drain_id.isdigit() and len(drain_id) <= 18):
        return await handler(request)
    with logs.bound(drain_id=int(drain_id)):
        return await handler(request)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TemporaryError as exc:  # the agent's own temporary failure: the controller retries after Retry-After
        return _error(503, str(exc), retry_after_s=max(1, round(exc.delay_s)))
    except DrainctlError as exc:
        return _error(500, str(exc))


async def _healthz(request: web.Request) -> web.StreamResponse:
    return _answer(wire.HealthAnswer())


async def _drain(request: web.Request) -> web.StreamResponse:
    body = await _parse(request, wire.DrainRequest)
    try:
        answer = await request.app[_AGENT].drain(body.rate_per_s, by="controller")
    except AppTimeout as exc:
        return _error(504, str(exc))
    except (AppUnreachable, AppRejected) as exc:
        return _error(502, str(exc))
    return _answer(wire.DrainAnswer(app=answer), status=202)


async def _not_ready(request: web.Request) -> web.StreamResponse:
    try:
        still_ready = await request.app[_AGENT].not_ready()
    except AppTimeout as exc:
        return _error(504, str(exc))
    except (AppUnreachable, AppRejected) as exc:
        return _error(502, str(exc))
    answer = wire.NotReadyAnswer(ready=still_ready is not False, hook=still_ready is not None)
    return _answer(answer, status=202)


async def _connections(request: web.Request) -> web.StreamResponse:
    agent = request.app[_AGENT]
    return _answer(wire.ConnectionsAnswer(port=agent.sockets.port, established=await agent.connections()))


async def _reset(request: web.Request) -> web.StreamResponse:
    agent = request.app[_AGENT]
    return _answer(wire.ResetAnswer(port=agent.sockets.port, reset=await agent.reset(by="controller")))


async def _add_notice(request: web.Request) -> web.StreamResponse:
    body = await _parse(request, wire.NoticeRequest)
    # A notice the controller posts within one of its drains (its drain id header: GCP's release records the MIG's
    # event this way, then releases it) is the controller's own: pushed back, it would come in as an echo.
    from_drain = logs.current("drain_id") is not None
    notice, _ = request.app[_AGENT].add_notice(body.id, body.kind, body.not_after, push=not from_drain)
    return _answer(notice.to_wire(), status=201)


async def _notices(request: web.Request) -> web.StreamResponse:
    return _answer(wire.NoticesAnswer(notices=[n.to_wire() for n in request.app[_AGENT].book.all()]))


async def _notice(request: web.Request) -> web.StreamResponse:
    return _answer(_known_notice(request).to_wire())


async def _release(request: web.Request) -> web.StreamResponse:
    notice = _known_notice(request)
    await request.app[_AGENT].release(notice, by="controller")
    return _answer(notice.to_wire())


async def _shutdown_hold(request: web.Request) -> web.StreamResponse:
    body = await _parse(request, wire.HoldRequest) if await request.read() else wire.HoldRequest()
    window_s = body.window_s or request.app[_HOLD_WINDOW_S]
    result = await hold(request.app[_AGENT], window_s=window_s, clock=SystemClock(), notice_id=body.notice_id,
                        not_after=body.not_after)
    return _answer(result.to_wire())


async def _metrics(request: web.Request) -> web.StreamResponse:
    text, content_type = request.app[_AGENT].metrics.render()
    return web.Response(body=text, headers={"Content-Type": content_type})


def _known_notice(request: web.Request) -> Notice:
    notice_id = request.match_info["id"]
    notice = request.app[_AGENT].book.get(notice_id)
    if notice is None:
        text = wire.ErrorAnswer(error=f"unknown notice {notice_id!r}").model_dump_json()
        raise web.HTTPNotFound(text=text, content_type="application/json")
    return notice


async def _parse(request: web.Request, model: type[Body]) -> Body:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "body"
        text = wire.ErrorAnswer(error=f"{key}: {first['msg']}").model_dump_json()
        raise web.HTTPBadRequest(text=text, content_type="application/json") from exc


def _answer(body: BaseModel, *, status: int = 200) -> web.Response:
    return web.json_response(text=body.model_dump_json(), status=status)


def _error(status: int, message: str, *, retry_after_s: int | None = None) -> web.Response:
    response = _answer(wire.ErrorAnswer(error=message), status=status)
    if retry_after_s is not None:
        response.headers["Retry-After"] = str(retry_after_s)
    return response
