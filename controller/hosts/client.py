"""The controller's client of a node agent's HTTP API (controller/agent/routes.py, DESIGN.md §6).

The paths and bodies are the wire protocol's (controller/protocol/agent.py), the same models the agent's routes
use. httpx errors, HTTP statuses and answers that are not the protocol's become ours at this boundary:

    AgentUnreachable (TemporaryError)   the agent did not accept the connection (down, wrong address, partition)
    AgentTimeout (TemporaryError)       no answer in time, or 504: the app's drain hook timed out (stopped app)
    AgentUnavailable (TemporaryError)   429 or any other 5xx: the agent's own temporary failure (`ss` timed out,
                                        IMDS answered 5xx); `delay_s` from Retry-After when given, `status` kept
    AgentUnauthorized (PermanentError)  401/403: the token is wrong
    AgentError (PermanentError)         any other 4xx, or an answer that is not the documented JSON

Transport errors and statuses are mapped once, by the shared `controller.core.http.HttpErrors` (issue 9, case 2:
a 503 used to be permanent, so a reset was never retried); only a 504 is mapped here first, as a timeout.
Requests are built unvalidated (`model_construct`): the agent judges what it accepts (a newer one may accept more)
and refuses the rest with a 400, as it always has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from controller.core import logs
from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, WithStatus, bearer
from controller.core.ports import HostUnreachable
from controller.hosts.pooling import AgentPool
from controller.protocol import agent as wire
from controller.protocol.agent import Notice

__all__ = [
    "AgentClient", "AgentError", "AgentTimeout", "AgentUnauthorized", "AgentUnavailable", "AgentUnreachable", "Notice",
]

Answer = TypeVar("Answer", bound=BaseModel)


class AgentUnreachable(HostUnreachable):
    pass


class AgentTimeout(TemporaryError):
    pass


class AgentUnauthorized(PermanentError):
    pass


class AgentUnavailable(WithStatus, TemporaryError):
    """The agent answered 429 or a 5xx other than 504: worth retrying after `delay_s`; `status` is its status."""


class AgentError(WithStatus, PermanentError):
    """The agent answered with an error; `status` is its HTTP status (0 when the answer was malformed)."""


class AgentClient:
    """One agent, reached through the shared `AgentPool`. The token is sent on every call and never logged."""

    def __init__(
        self, base_url: str, token: str, *, timeout_s: float = 3.0, transport: httpx.AsyncBaseTransport | None = None,
        pool: AgentPool | None = None,
        observe: Callable[[bool], None] | None = None,
    ) -> None:
        """`pool`: the process's shared pool (the composition root's); None: a pool of its own, closed by
        `aclose` (a test's, a one-off caller's). `transport`: for unit tests of the client's own parsing
        (httpx.MockTransport) when it has its own pool; None: the network. `observe`: told after every
        request whether the agent answered (`hosts/reachability.py`)."""
        self._observe = observe
        self._own_pool = pool is None
        self._pool = pool if pool is not None else AgentPool(max_in_flight=16, max_keepalive=4, transport=transport)
        self._base_url = base_url.rstrip("/")
        self._headers = bearer(token)
        self._timeout_s = timeout_s
        self._errors = HttpErrors(
            f"agent {self._base_url}/", timeout=AgentTimeout, unreachable=AgentUnreachable,
            unavailable=AgentUnavailable, credentials=AgentUnauthorized, refused=AgentError, reason=_reason,
            timeout_text="{where}: no answer to {what}", unreachable_text="{where} unreachable: {why}",
            credentials_text="agent refused the token ({what}: {status})",
            status_text="agent: {what}: HTTP {status}: {reason}",
        )

    async def drain(self, rate_per_s: float) -> None:
        """Ask the agent to have its app drain at `rate_per_s` disconnects per second."""
        body = wire.DrainRequest.model_construct(rate_per_s=rate_per_s)
        await self._call("POST", wire.DRAIN, wire.DrainAnswer, body=body)

    async def not_ready(self) -> bool | None:
        """The drain's first step: have the app turn not ready (still serving). Whether it is still ready;
        None when the app has no not-ready hook."""
        answer = await self._call("POST", wire.NOT_READY, wire.NotReadyAnswer)
        return answer.ready if answer.hook else None

    async def connections(self) -> int:
        """Established sockets on the service port, counted by the host's kernel."""
        return (await self._call("GET", wire.CONNECTIONS, wire.ConnectionsAnswer)).established

    async def reset(self) -> int:
        """Reset (TCP RST) every established socket on the service port; how many were reset."""
        return (await self._call("POST", wire.RESET, wire.ResetAnswer)).reset

    async def notices(self) -> list[Notice]:
        return (await self._call("GET", wire.NOTICES, wire.NoticesAnswer)).notices

    async def notice(self, notice_id: str) -> Notice:
        return await self._call("GET", wire.notice_path(notice_id), Notice)

    async def post_notice(self, notice_id: str, kind: str, not_after: float) -> Notice:
        """Report a platform notice (the local source and the testbed supervisor do); idempotent by id."""
        body = wire.NoticeRequest.model_construct(id=notice_id, kind=kind, not_after=not_after)
        return await self._call("POST", wire.NOTICES, Notice, body=body)

    async def release(self, notice_id: str) -> None:
        """Tell the agent the host may go: the platform proceeds with the notice."""
        await self._call("POST", wire.release_path(notice_id), Notice)

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        """Close its own pool; a shared pool is closed by its owner."""
        if self._own_pool:
            await self._pool.aclose()

    async def _call(self, method: str, path: str, answer: type[Answer], *, body: BaseModel | None = None) -> Answer:
        what = f"{method} {path}"
        json = None if body is None else body.model_dump(mode="json")
        try:
            response = await self._pool.request(method, self._base_url + path, json=json,
                                                headers={**self._headers, **_drain_header()},
                                                timeout_s=self._timeout_s)
        except httpx.TransportError as exc:
            self._answered(False)
            raise self._errors.from_transport(exc, what) from exc
        self._answered(True)
        return _parsed(self._checked(response, what), answer, what)

    def _answered(self, answered: bool) -> None:
        if self._observe is not None:
            self._observe(answered)

    def _checked(self, response: httpx.Response, what: str) -> Any:
        """The JSON of a 2xx answer; else the error its status means (a 504 is a timeout)."""
        if response.status_code == 504:
            raise AgentTimeout(f"agent: {what}: {_reason(response)}")
        self._errors.check(response, what)
        return _json(response, what)


def _drain_header() -> dict[str, str]:
    """The drain this request serves (bound by the engine's pass), so the agent's log lines name it too."""
    drain_id = logs.current("drain_id")
    return {} if drain_id is None else {wire.DRAIN_ID_HEADER: str(drain_id)}


def _json(response: httpx.Response, what: str) -> Any:
    status = response.status_code
    try:
        return response.json()
    except ValueError as exc:
        raise AgentError(f"agent: {what}: HTTP {status}, not JSON", status=status) from exc


def _parsed(raw: Any, answer: type[Answer], what: str) -> Answer:
    try:
        return answer.model_validate(raw)
    except ValidationError as exc:
        raise AgentError(f"agent: {what}: malformed answer: {_first_error(exc)}") from exc


def _reason(response: httpx.Response) -> str:
    try:
        return wire.ErrorAnswer.model_validate_json(response.content).error
    except ValidationError:
        return response.text[:200] or "no reason given"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc']) or 'body'}: {first['msg']}"
