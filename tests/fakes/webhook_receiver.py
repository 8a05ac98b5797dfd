"""A webhook receiver on loopback (what Slack's incoming webhooks or an incident tool are to drainctl).

It records every attempt (delivery id, event, headers, body, the status it answered) and can fail the first
`fail_first` attempts of each delivery id with 500, so a test sees retries carry the same id. Only requests to
its secret `path` with the expected `Authorization` header are accepted (401 otherwise): a test can check that
the URL and the headers came from their files.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Attempt:
    delivery_id: str
    event: str
    status: int
    body: Any


class WebhookReceiver:
    def __init__(self, *, path: str, authorization: str, fail_first: int = 0) -> None:
        self.path = path
        self.authorization = authorization
        self.fail_first = fail_first
        self.attempts: list[Attempt] = []
        self._tries: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(self.path, self._hook)
        return app

    def close(self) -> None:
        return None

    def delivered(self) -> list[Attempt]:
        """The attempts that were answered 2xx."""
        return [a for a in self.attempts if a.status == 200]

    async def _hook(self, request: web.Request) -> web.Response:
        delivery_id = request.headers.get("Drainctl-Delivery", "")
        body = json.loads(await request.text())
        if request.headers.get("Authorization") != self.authorization:
            status = 401
        else:
            self._tries[delivery_id] += 1
            status = 500 if self._tries[delivery_id] <= self.fail_first else 200
        self.attempts.append(Attempt(delivery_id, request.headers.get("Drainctl-Event", ""), status, body))
        return web.json_response({"ok": status == 200}, status=status)
