"""The client of the controller's HTTP API (controller/api): the on-call CLI's, and the testbed supervisor's.

httpx errors and HTTP statuses become ours at this boundary, each one line an on-call engineer can act on:

    DrainctlError
    ├── ConfigError                  (CLI exit 2: a usage error)
    │   ├── ControllerRefusedToken   401/403: the token is not the controller's (the token is never shown)
    │   ├── NotFound                 404: unknown instance or drain
    │   └── BadRequest               400: the controller refused a value of the request
    ├── TemporaryError               (CLI exit 1)
    │   ├── ControllerUnreachable    no connection, or no answer in time; names the URL
    │   └── ControllerUnavailable    503: not the leader, or a temporary failure behind it (an agent down)
    └── PermanentError               (CLI exit 1)
        ├── ManualDrainsDisabled     409: `sources.manual.enabled: false`, or a cancel after a reset began
        └── ControllerError          any other error status, or an answer that is not the documented JSON

Every write (drain, reset, cancel) carries a request id, made once per call and sent again on the client's own
retries (a timeout, a refused connection, a 503): the controller keeps it as the event's id, so a drain retried
after its answer was lost is one drain, not two.

The mapping is the shared one (controller/core/http.py), reworded for on-call and with the API's own statuses
first (400, 404, 409, 503 carry the API's `{"error": ...}` as the whole message). Bodies come back as the API's
JSON objects (controller/api/shapes.py documents them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from controller.core.errors import ConfigError, DrainctlError, PermanentError, TemporaryError
from controller.core.http import CREDENTIAL_STATUSES, HttpErrors, bearer, client, reason_text, send_sync
from controller.core.retrying import backoff

DEFAULT_TIMEOUT_S = 10.0
"""Per request. Generous: a reset waits for the host's agent, which waits for the kernel."""
WRITE_ATTEMPTS = 3
"""A write is sent at most this often (the same request id each time) while the controller is out of reach."""
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 2.0


def new_request_id() -> str:
    """One per write: the controller derives the event's id from it, so retries of the write are one request."""
    return uuid.uuid4().hex


class ControllerRefusedToken(ConfigError):
    pass


class NotFound(ConfigError):
    pass


class BadRequest(ConfigError):
    pass


class ControllerUnreachable(TemporaryError):
    pass


class ControllerUnavailable(TemporaryError):
    pass


class ManualDrainsDisabled(PermanentError):
    pass


class ControllerError(PermanentError):
    pass


_BY_STATUS: dict[int, type[DrainctlError]] = {
    400: BadRequest, 404: NotFound, 409: ManualDrainsDisabled, 503: ControllerUnavailable,
}


@dataclass(frozen=True)
class _ControllerErrors(HttpErrors):
    """The API's statuses with its own message first; any other error status is a `ControllerError`."""

    def from_status(self, response: httpx.Response, what: str) -> DrainctlError | None:
        status = response.status_code
        if response.is_success or status in CREDENTIAL_STATUSES:
            return super().from_status(response, what)
        reason, kind = _reason(response), _BY_STATUS.get(status)
        if reason is None:
            return ControllerError(f"{self.where} answered {what} with HTTP {status} but not with drainctl's JSON: "
                                   "is it the controller's API?")
        return kind(reason) if kind is not None else super().from_status(response, what)


def _errors(base_url: str) -> HttpErrors:
    return _ControllerErrors(
        f"the controller at {base_url}", timeout=ControllerUnreachable, unreachable=ControllerUnreachable,
        unavailable=ControllerError, credentials=ControllerRefusedToken, refused=ControllerError,
        malformed=ControllerError,
        reason=lambda response: _reason(response) or reason_text(response),
        unreachable_text="cannot reach {where}: {why}", credentials_text="{where} refused the token ({status})",
        status_text="{what}: HTTP {status}: {reason}", malformed_text="{what}: {problem}",
    )


class ControllerClient:
    """One controller, one connection pool. The token goes in every request's header and nowhere else.

    Proxy variables are ignored (`trust_env=False`): the controller is reached directly, as configured.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        write_attempts: int = WRITE_ATTEMPTS,
    ) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self.base_url = base_url.rstrip("/")
        self._write_attempts = write_attempts
        self._http = client(base_url=self.base_url, headers=bearer(token), timeout=timeout_s, transport=transport)
        self._errors = _errors(self.base_url)

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def drain(
        self,
        instance: str,
        *,
        deadline_s: float | None = None,
        rate_per_s: float | None = None,
        dry_run: bool = False,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """`{"disposition", "drain"}`, or with `dry_run` `{"dry_run": {...}}` (nothing changes)."""
        body: dict[str, Any] = {"instance": instance, "dry_run": dry_run}
        optional = {"deadline_s": deadline_s, "rate_per_s": rate_per_s, "request_id": request_id or new_request_id()}
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._write("/v1/drains", body)

    def push_event(self, instance: str, *, kind: str, not_after: float, notice_id: str) -> dict[str, Any]:
        """Push a local platform notice (post the same notice to the host's agent too): `{"disposition", "drain"}`."""
        body = {"instance": instance, "kind": kind, "not_after": not_after, "id": notice_id, "source": "local"}
        return self._call("POST", "/v1/events", json=body)

    def instances(self) -> list[dict[str, Any]]:
        return _list(self._call("GET", "/v1/instances"), "instances")

    def instance(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/instances/{_segment(name)}")

    def reset(self, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        """`{"instance", "done", "reset", "why", "drain"}`: how many sockets this call reset."""
        return self._write(f"/v1/instances/{_segment(name)}/reset", {"request_id": request_id or new_request_id()})

    def cancel(self, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        """`{"instance", "what", "drain"}`: the running drain, cancelled (a refusal is a `ControllerError`)."""
        return self._write(f"/v1/instances/{_segment(name)}/cancel", {"request_id": request_id or new_request_id()})

    def history(self, *, limit: int = 100, instance: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": limit}
        if instance:
            params["instance"] = instance
        return _list(self._call("GET", "/v1/history", params=params), "drains")

    def drain_record(self, drain_id: int) -> dict[str, Any]:
        """`{"drain", "journal"}`: one episode and its journal lines."""
        return self._call("GET", f"/v1/drains/{drain_id}")

    def _write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` (with its request id), again while the controller is out of reach or unavailable."""
        retrying = Retrying(
            retry=retry_if_exception_type((ControllerUnreachable, ControllerUnavailable)),
            stop=stop_after_attempt(self._write_attempts),
            wait=backoff(initial_s=RETRY_INITIAL_S, max_s=RETRY_MAX_S),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._call("POST", path, json=body)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str | int] | None = None
    ) -> dict[str, Any]:
        response = send_sync(self._http, self._errors, method, path, json=json, params=params)
        return self._errors.json_object(response, f"{method} {path}")


def _reason(response: httpx.Response) -> str | None:
    """The API's `{"error": ...}` message; None when the answer is not the API's (another server answered)."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return None


def _list(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = body.get(name)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ControllerError(f"expected a list of objects under {name!r}")
    return items


def _segment(text: str) -> str:
    """A path segment: an instance name may not smuggle in a path."""
    return quote(text, safe="")
