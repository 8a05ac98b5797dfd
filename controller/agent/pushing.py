"""Push each new notice to the controller the moment the agent sees it (the controller's poll is a backstop).

`POST /v1/pushes` (controller/protocol/pushes.py) with the push token, which lets a host report notices and
nothing else. The configured controller addresses (`controllers:` in agent.yaml: both of an HA pair, or one
VIP) are tried in turn; a standby that answers 421/503 with where the leader is (`leader_url`, or the
`Drainctl-Leader` header) is followed once. A round in which some address failed for a temporary reason is
retried with drainctl's backoff (core/retrying.py) until a controller takes the notice, the notice is released,
or its `not_after` passes; a round refused for good by every address (401, 400) is logged and given up. Either
way the agent's fallback and the controller's backstop poll still stand behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
from pydantic import ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from controller.agent.notices import Notice, NoticeState
from controller.core.clocks import SleepingClock as Clock
from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from controller.core.http import HttpErrors, async_client, bearer
from controller.core.retrying import backoff
from controller.protocol import pushes as wire
from controller.protocol.agent import NoticeRequest

log = logging.getLogger(__name__)


class PushUnavailable(TemporaryError):
    """No controller took the push this round (unreachable, timed out, 5xx, a standby); worth retrying."""


class PushRefused(PermanentError):
    """A controller refused the push (wrong token, a body it does not take, an instance it cannot learn)."""


class Pusher:
    """One agent's pushes: who it is, where the controllers are, and the backoff between rounds."""

    def __init__(
        self, controllers: Sequence[str], token: str, *, instance: str, agent_url: str, clock: Clock,
        pool: str | None = None, timeout_s: float = 2.0, retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._controllers = [url.rstrip("/") for url in controllers]
        self._instance, self._pool = instance, pool
        self.agent_url = agent_url
        """Where the controller calls this agent back (set again once a port-0 listener is bound)."""
        self._clock = clock
        self._wait = backoff(initial_s=retry_initial_s, max_s=retry_max_s)
        self._http = async_client(headers=bearer(token), timeout=timeout_s, transport=transport)

    async def push(self, notice: Notice) -> wire.PushAnswer | None:
        """Until a controller takes it (its answer), or the notice no longer needs it (None): released already (GCP's
        release records the MIG's event as a notice and releases it at once) or past its `not_after`."""
        if self._done(notice):
            return None
        body = self._body(notice).model_dump(mode="json")
        retrying = AsyncRetrying(wait=self._wait, retry=retry_if_exception_type(TemporaryError),
                                 stop=lambda state: self._done(notice), reraise=True,
                                 before_sleep=lambda state: _log_retry(notice, state))
        try:
            async for attempt in retrying:
                with attempt:
                    answer = await self._round(body)
        except DrainctlError as exc:
            log.warning("notice %s: push given up: %s", notice.id, exc)
            return None
        log.info("notice %s pushed to the controller: %s", notice.id, answer.disposition)
        return answer

    async def aclose(self) -> None:
        await self._http.aclose()

    def _done(self, notice: Notice) -> bool:
        return notice.state is NoticeState.RELEASED or self._clock.now() >= notice.not_after

    def _body(self, notice: Notice) -> wire.PushRequest:
        request = NoticeRequest(id=notice.id, kind=notice.kind, not_after=notice.not_after)
        return wire.PushRequest(instance=self._instance, agent_url=self.agent_url, pool=self._pool,
                                notice=request)

    async def _round(self, body: object) -> wire.PushAnswer:
        """Every address in turn; the first answer wins. Temporary if any address failed temporarily."""
        failures: list[DrainctlError] = []
        for url in self._controllers:
            try:
                return await self._send(url, body, follow=True)
            except DrainctlError as exc:
                failures.append(exc)
        temporary = [f for f in failures if isinstance(f, TemporaryError)]
        if temporary or not failures:
            raise PushUnavailable("; ".join(str(f) for f in failures) or "no controller configured")
        raise PushRefused("; ".join(str(f) for f in failures))

    async def _send(self, url: str, body: object, *, follow: bool) -> wire.PushAnswer:
        errors = _errors(url)
        what = f"POST {wire.PUSHES}"
        with errors.translating(what):
            response = await self._http.post(url + wire.PUSHES, json=body)
        if response.status_code in wire.NOT_THE_LEADER:
            leader = _leader_url(response)
            if follow and leader is not None and leader.rstrip("/") != url:
                return await self._send(leader.rstrip("/"), body, follow=False)
        errors.check(response, what)
        try:
            return wire.PushAnswer.model_validate(errors.json_object(response, what))
        except ValidationError as exc:
            raise PushRefused(f"controller {url}: {what}: not a push answer") from exc


def _errors(url: str) -> HttpErrors:
    return HttpErrors(f"controller {url}", timeout=PushUnavailable, unreachable=PushUnavailable,
                      unavailable=PushUnavailable, credentials=PushRefused, refused=PushRefused,
                      malformed=PushRefused)


def _leader_url(response: httpx.Response) -> str | None:
    """Where a standby says the leader is: its header, else its body; None when it does not say."""
    for header in wire.LEADER_HEADERS:
        if response.headers.get(header, "").startswith(("http://", "https://")):
            return response.headers[header]
    try:
        answer = wire.NotLeaderAnswer.model_validate_json(response.content)
    except ValueError:
        return None
    found = answer.leader_url or answer.leader
    return found if found is not None and found.startswith(("http://", "https://")) else None


def _log_retry(notice: Notice, state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning("notice %s: push attempt %d failed, retrying: %s", notice.id, state.attempt_number, error)
