"""`POST /v1/pushes`: an agent reports a notice the moment it sees it (the fast path; the poll is the backstop).

Authenticated with the push token (`api.push_token_file`), which opens this route and nothing else: a host
holding it can report that it is going away, never drain, reset or read another host. The push names the
agent's instance and its callback URL; an instance the controller does not know yet is learned (inventory and
agent, `controller/hosts/learning.py`) when `agents.token_file` lets the controller call it back, else the push
is refused with 404 and the agent's fallback and the next discovery round remain. A body that is not a push is
one 400 line naming the key. Concurrent pushes are journaled together, one commit per batch, each answered
only once its event is durable (`batching.py`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property

from aiohttp import web
from pydantic import ValidationError

from controller.api.batching import MAX_BATCH, GroupCommit
from controller.core.notices import notice_event
from controller.engine import Engine
from controller.hosts.learning import KnownAgents
from controller.protocol.pushes import PUSHES, PushAnswer, PushRequest

log = logging.getLogger("drainctl.api")


@dataclass(frozen=True)
class Pushes:
    """What the push route needs: its token, the engine it submits to, the agents it may learn, the pool of a
    push that names none, the most pushes journaled in one commit."""

    token: str = field(repr=False)
    engine: Engine
    agents: KnownAgents
    learned_pool: str = "default"
    max_batch: int = MAX_BATCH

    @cached_property
    def intake(self) -> GroupCommit:
        return GroupCommit(self.engine.submit_all, max_batch=self.max_batch)

    def route(self, app: web.Application) -> None:
        app.router.add_post(PUSHES, self._push)
        app.on_cleanup.append(lambda _app: self.intake.aclose())

    async def _push(self, request: web.Request) -> web.StreamResponse:
        body = _parsed(await request.read())
        learned = self._learn(body)
        notice = body.notice
        event = notice_event(body.instance, notice_id=notice.id, kind=notice.kind, not_after=notice.not_after)
        submission = await self.intake.submit(event)
        log.info("api: %s notice %s for %s pushed by its agent: %s%s", event.kind, notice.id, body.instance,
                 submission.disposition, " (instance learned)" if learned else "")
        drain = submission.drain
        drain_id = drain.id if drain is not None else None
        start_by = self.engine.start_by(drain) if drain is not None else None  # a duplicate too: a restarted agent
        answer = PushAnswer(disposition=submission.disposition, drain_id=drain_id, learned=learned,
                            start_by=start_by)
        return web.json_response(text=answer.model_dump_json(), status=202)

    def _learn(self, body: PushRequest) -> bool:
        if body.instance in self.engine.inventory:
            return False
        if not self.agents.can_learn:
            raise _error(web.HTTPNotFound, f"unknown instance {body.instance!r}: not in the inventory, and "
                                           "agents.token_file is not set, so it cannot be learned from a push")
        return self.agents.learn(body.instance, body.agent_url, body.pool or self.learned_pool)


def _parsed(raw: bytes) -> PushRequest:
    try:
        return PushRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"]) or "body"
        raise _error(web.HTTPBadRequest, f"{key}: {first['msg']}") from exc


def _error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
