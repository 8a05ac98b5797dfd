"""The controller's client of a node agent's HTTP API (controller/agent/routes.py, DESIGN.md §6).

httpx errors and HTTP statuses become ours at this boundary:

    AgentUnreachable (TemporaryError)   the agent did not accept the connection (down, wrong address, partition)
    AgentTimeout (TemporaryError)       no answer in time, or 504: the app's drain hook timed out (stopped app)
    AgentUnauthorized (PermanentError)  401: the token is wrong
    AgentError (PermanentError)         any other 4xx/5xx, or an answer that is not the documented JSON
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from controller.core.errors import PermanentError, TemporaryError


class AgentUnreachable(TemporaryError):
    pass


class AgentTimeout(TemporaryError):
    pass


class AgentUnauthorized(PermanentError):
    pass


class AgentError(PermanentError):
    """The agent answered with an error; `status` is its HTTP status (0 when the answer was malformed)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Notice:
    """A platform lifecycle notice as the agent reports it (`GET /v1/notices`)."""

    id: str
    kind: str
    not_after: float
    """Unix seconds: the platform deletes the host at this time."""
    state: str
    """`open`, `draining` or `released`."""
    drain_started_by: str | None
    """`controller`, `agent` (its local fallback) or None."""
    reset: int | None
    """Sockets the agent's fallback reset for this notice, None when it reset none."""
    released_at: float | None
    released_by: str | None = None
    seen_at: float | None = None

    @classmethod
    def from_json(cls, raw: Any) -> Notice:
        try:
            return cls(
                id=str(raw["id"]),
                kind=str(raw["kind"]),
                not_after=float(raw["not_after"]),
                state=str(raw["state"]),
                drain_started_by=raw.get("drain_started_by"),
                reset=_optional(int, raw.get("reset")),
                released_at=_optional(float, raw.get("released_at")),
                released_by=raw.get("released_by"),
                seen_at=_optional(float, raw.get("seen_at")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AgentError(f"agent sent a malformed notice: {exc!r}") from exc


class AgentClient:
    """One agent, one connection pool. The token is sent on every call and never logged."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 3.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s
        )

    async def drain(self, rate_per_s: float) -> None:
        """Ask the agent to have its app drain at `rate_per_s` disconnects per second."""
        await self._call("POST", "/v1/drain", json={"rate_per_s": rate_per_s})

    async def connections(self) -> int:
        """Established sockets on the service port, counted by the host's kernel."""
        return int(_field(await self._call("GET", "/v1/connections"), "established"))

    async def reset(self) -> int:
        """Reset (TCP RST) every established socket on the service port; how many were reset."""
        return int(_field(await self._call("POST", "/v1/reset"), "reset"))

    async def notices(self) -> list[Notice]:
        notices = _field(await self._call("GET", "/v1/notices"), "notices")
        if not isinstance(notices, list):
            raise AgentError("agent sent notices that are not a list")
        return [Notice.from_json(raw) for raw in notices]

    async def notice(self, notice_id: str) -> Notice:
        return Notice.from_json(await self._call("GET", f"/v1/notices/{_segment(notice_id)}"))

    async def post_notice(self, notice_id: str, kind: str, not_after: float) -> Notice:
        """Report a platform notice (the local source and the testbed supervisor do); idempotent by id."""
        body = {"id": notice_id, "kind": kind, "not_after": not_after}
        return Notice.from_json(await self._call("POST", "/v1/notices", json=body))

    async def release(self, notice_id: str) -> None:
        """Tell the agent the host may go: the platform proceeds with the notice."""
        await self._call("POST", f"/v1/notices/{_segment(notice_id)}/release")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, *, json: Any = None) -> Any:
        try:
            response = await self._http.request(method, path, json=json)
        except httpx.TimeoutException as exc:
            raise AgentTimeout(f"agent {self._http.base_url}: no answer to {method} {path}") from exc
        except httpx.TransportError as exc:
            raise AgentUnreachable(f"agent {self._http.base_url} unreachable: {type(exc).__name__}: {exc}") from exc
        return _body(response, f"{method} {path}")


def _body(response: httpx.Response, what: str) -> Any:
    if response.status_code == 401:
        raise AgentUnauthorized(f"agent refused the token ({what}: 401)")
    if response.status_code == 504:
        raise AgentTimeout(f"agent: {what}: {_reason(response)}")
    status = response.status_code
    if not response.is_success:
        raise AgentError(f"agent: {what}: HTTP {status}: {_reason(response)}", status=status)
    try:
        return response.json()
    except ValueError as exc:
        raise AgentError(f"agent: {what}: HTTP {status}, not JSON", status=status) from exc


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "no reason given"


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise AgentError(f"agent's answer lacks {name!r}")
    return body[name]


def _optional(kind: type[int] | type[float], value: Any) -> Any:
    return None if value is None else kind(value)


def _segment(notice_id: str) -> str:
    return quote(notice_id, safe="")
