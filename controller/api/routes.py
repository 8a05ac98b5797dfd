"""The API's handlers, its bearer-token check and the mapping of our errors to HTTP statuses.

Middlewares run outermost first: the token (401, nothing else happens), leadership (503 on `/v1/` when this
controller is not the active one, for HA later), then errors as JSON. Handlers are thin: they parse, call the
engine and render with `shapes`. Every request that changes something is logged in one line (never a token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError

from controller.api import joining, shapes
from controller.api.bodies import DrainRequest, EventRequest, WriteRequest
from controller.api.pushes import Pushes
from controller.core.errors import DrainctlError, TemporaryError
from controller.core.models import Drain, EventKind, Phase
from controller.core.notices import notice_event
from controller.core.timestamps import rfc3339
from controller.engine import CancelRefused, Engine, ManualDisabled, UnknownInstance
from controller.listeners.metrics import EngineMetrics
from controller.protocol.auth import PUBLIC_PATHS, bearer_token
from controller.protocol.pushes import PUSHES

log = logging.getLogger("drainctl.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Body = TypeVar("Body", bound=BaseModel)

HISTORY_LIMIT_MAX = 10_000


def always_leader() -> bool:
    return True


def no_leader_known() -> str | None:
    return None


@dataclass(frozen=True)
class Api:
    engine: Engine
    is_leader: Callable[[], bool]
    """Whether this controller is the active one; the others answer 503 on `/v1/` routes."""
    leader_url: Callable[[], str | None] = no_leader_known
    """Where the active one's API is (from the lease), for a standby's answer to a write."""


LEADER_HEADER = "X-Drainctl-Leader"
"""On a standby's 503 to a write: the leader's advertised API URL (also `leader` in the JSON body)."""


_API: web.AppKey[Api] = web.AppKey("api", Api)


def build_app(
    engine: Engine, token: str, *, is_leader: Callable[[], bool] = always_leader,
    leader_url: Callable[[], str | None] = no_leader_known, pushes: Pushes | None = None,
) -> web.Application:
    """`pushes`: the agents' push route and its token (`api.push_token_file`); None: no push route."""
    public = PUBLIC_PATHS | {"/readyz"}
    scoped = {PUSHES: pushes.token} if pushes is not None else None
    app = web.Application(
        middlewares=[bearer_token(token, public_paths=public, scoped=scoped), _leadership, _errors_as_json]
    )
    app[_API] = Api(engine, is_leader, leader_url)
    if pushes is not None:
        pushes.route(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/v1/drains", _drain)
    app.router.add_post("/v1/events", _event)
    app.router.add_get("/v1/instances", _instances)
    app.router.add_get("/v1/instances/{name}", _instance)
    app.router.add_post("/v1/instances/{name}/reset", _reset)
    app.router.add_post("/v1/instances/{name}/cancel", _cancel)
    app.router.add_get("/v1/history", _history)
    app.router.add_get("/v1/drains/{id}", _drain_record)
    return app


# --- middlewares ---------------------------------------------------------------------------------------------


@web.middleware
async def _leadership(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A standby answers reads from the shared journal and tells writes where the leader is."""
    api = request.app[_API]
    if not request.path.startswith("/v1/") or api.is_leader():
        return await handler(request)
    if request.method in ("GET", "HEAD"):
        api.engine.reload(reads=True)
        return await handler(request)
    return _not_the_leader(api.leader_url())


def _not_the_leader(url: str | None) -> web.Response:
    """503 (retry there, or here in a moment) with the leader's URL in the body and `X-Drainctl-Leader`."""
    where = f"the leader is at {url}" if url else "no leader is known yet"
    headers = {"Retry-After": "1", **({LEADER_HEADER: url} if url else {})}
    return web.json_response({"error": f"not the leader; {where}", "leader": url}, status=503, headers=headers)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.status, exc.reason.lower())
    except UnknownInstance as exc:
        return _error(404, str(exc))
    except (ManualDisabled, CancelRefused) as exc:
        return _error(409, str(exc))
    except TemporaryError as exc:
        return _error(503, str(exc), retry_after_s=max(1, round(exc.delay_s)))
    except DrainctlError as exc:
        log.error("%s %s failed: %s", request.method, request.path, exc)
        return _error(500, str(exc))


# --- handlers ------------------------------------------------------------------------------------------------


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.StreamResponse:
    """200 only on the controller that acts, so a VIP or load balancer in front of a pair reaches it."""
    if request.app[_API].is_leader():
        return web.json_response({"status": "leader"})
    return web.json_response({"status": "standby"}, status=503)


async def _metrics(request: web.Request) -> web.StreamResponse:
    registry = _registry(_engine(request))
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _registry(engine: Engine) -> CollectorRegistry:
    """The registry of the engine's metrics listener (empty when it was given none)."""
    found = (listener.registry for listener in engine.listeners if isinstance(listener, EngineMetrics))
    return next(found, CollectorRegistry())


async def _drain(request: web.Request) -> web.StreamResponse:
    body = await _parse(request, DrainRequest)
    engine = _engine(request)
    if body.dry_run:
        event = engine.manual_event(body.instance, deadline_s=body.deadline_s, rate_per_s=body.rate_per_s,
                                    request_id=body.request_id)
        verdict = engine.dry_run(event)
        return web.json_response({"dry_run": shapes.dry_run_json(event, verdict, now=engine.clock.now())})
    submission = engine.drain(body.instance, deadline_s=body.deadline_s, rate_per_s=body.rate_per_s,
                              request_id=body.request_id)
    log.info("api: drain of %s requested by an operator: %s%s", body.instance, submission.disposition,
             f" (drain {submission.drain.id})" if submission.drain else "")
    answer = shapes.submission_json(submission)
    answer["not_applied"] = joining.not_applied(body, submission, now=engine.clock.now())
    return web.json_response(answer, status=202)


async def _event(request: web.Request) -> web.StreamResponse:
    body = await _parse(request, EventRequest)
    event = notice_event(body.instance, notice_id=body.id, kind=body.kind, not_after=body.not_after)
    submission = _engine(request).submit(event)
    log.info("api: %s notice %s for %s pushed: %s", event.kind, body.id, body.instance, submission.disposition)
    return web.json_response(shapes.submission_json(submission), status=202)


async def _instances(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    now = engine.clock.now()
    return web.json_response({"instances": [shapes.status_json(s, now=now) for s in engine.status()]})


async def _instance(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    name = request.match_info["name"]
    for status in engine.status():
        if status.instance == name:
            return web.json_response(shapes.status_json(status, now=engine.clock.now()))
    raise _unknown_instance(engine, name)


async def _reset(request: web.Request) -> web.StreamResponse:
    """Force-reset now; answers how many sockets this call reset, and whether the reset is done."""
    engine = _engine(request)
    name = request.match_info["name"]
    request_id = (await _optional(request, WriteRequest)).request_id
    before = engine.get(name)
    recent = engine.journal(limit=1)
    since = recent[-1].seq if recent else 0
    if request_id and before is not None and engine.seen_request(name, EventKind.RESET, request_id):
        since = 0  # a retry of a reset already taken: its episode's own reset counts
        before = None
    log.info("api: reset of %s requested by an operator", name)
    drain = await engine.reset(name, request_id=request_id)
    done = any(line.step == "reset done" for line in engine.journal(drain.id) if line.seq > since)
    counted_before = before.sockets_reset if before is not None and before.id == drain.id else 0
    reset = drain.sockets_reset - counted_before if done else 0
    why = None if done else _not_done(drain)
    return web.json_response({"instance": name, "done": done, "reset": reset, "why": why,
                              "drain": shapes.drain_json(drain)})


async def _cancel(request: web.Request) -> web.StreamResponse:
    """Cancel the running drain before any reset; 409 when there is none or its reset has begun."""
    engine = _engine(request)
    name = request.match_info["name"]
    request_id = (await _optional(request, WriteRequest)).request_id
    log.info("api: cancel of %s requested by an operator", name)
    drain = await engine.cancel(name, request_id=request_id)
    if drain.needs_release and not drain.finished and drain.release_by is not None:
        what = f"the platform's notice is left to its deadline (released at {rfc3339(drain.release_by)})"
    else:
        what = "nothing more is done to the host (sockets the app closed stay closed)"
    return web.json_response({"instance": name, "what": what, "drain": shapes.drain_json(drain)})


async def _history(request: web.Request) -> web.StreamResponse:
    limit = _limit(request.query.get("limit", "100"))
    instance = request.query.get("instance") or None
    drains = _engine(request).history(instance=instance, limit=limit)
    return web.json_response({"drains": [shapes.drain_json(d) for d in drains]})


async def _drain_record(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    text = request.match_info["id"]
    drain = _episode(engine, int(text)) if text.isdigit() else None
    if drain is None:
        raise _json_error(web.HTTPNotFound, f"unknown drain {text!r}")
    journal = [shapes.transition_json(line) for line in engine.journal(drain.id)]
    return web.json_response({"drain": shapes.drain_json(drain), "journal": journal})


# --- helpers -------------------------------------------------------------------------------------------------


def _engine(request: web.Request) -> Engine:
    return request.app[_API].engine


def _episode(engine: Engine, drain_id: int) -> Drain | None:
    """One episode by id: its journal names the instance, whose history holds it (newest first)."""
    lines = engine.journal(drain_id, limit=1)
    if not lines:
        return None
    limit = 100
    while True:
        drains = engine.history(instance=lines[0].instance, limit=limit)
        found = next((d for d in drains if d.id == drain_id), None)
        if found is not None or len(drains) < limit or drains[-1].id < drain_id:
            return found
        limit *= 10


def _not_done(drain: Drain) -> str:
    if drain.phase is Phase.FAILED:
        return drain.reason or "the drain failed"
    deadline = f" until {rfc3339(drain.release_by)}" if drain.release_by else ""
    return (f"the host's agent did not complete the reset; the controller keeps retrying{deadline} "
            "(its log says why)")


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= HISTORY_LIMIT_MAX:
        raise _json_error(web.HTTPBadRequest, f"limit: expected a whole number from 1 to {HISTORY_LIMIT_MAX}")
    return int(text)


def _unknown_instance(engine: Engine, name: str) -> web.HTTPException:
    known = ", ".join(sorted(engine.inventory)) or "none"
    return _json_error(web.HTTPNotFound, f"unknown instance {name!r} (known: {known})")


async def _parse(request: web.Request, model: type[Body]) -> Body:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"]) or "body"
        raise _json_error(web.HTTPBadRequest, f"{key}: {first['msg']}") from exc


async def _optional(request: web.Request, model: type[Body]) -> Body:
    """A body that may be left out (an empty POST is the model's defaults)."""
    if not await request.read():
        return model.model_validate({})
    return await _parse(request, model)


def _json_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _error(status: int, message: str, *, retry_after_s: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)
