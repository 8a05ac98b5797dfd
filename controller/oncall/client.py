"""The client of the controller's HTTP API (controller/api): the on-call CLI's, and the testbed supervisor's.

httpx errors and HTTP statuses become ours at this boundary, each one line an on-call engineer can act on:

    DrainctlError
    ├── ConfigError                  (CLI exit 2: a usage error)
    │   ├── ControllerRefusedToken   401: the token is not the controller's (the token is never shown)
    │   ├── NotFound                 404: unknown instance or drain
    │   └── BadRequest               400: the controller refused a value of the request
    ├── TemporaryError               (CLI exit 1)
    │   ├── ControllerUnreachable    no connection, or no answer in time; names the URL
    │   └── ControllerUnavailable    503: not the leader, or a temporary failure behind it (an agent down)
    └── PermanentError               (CLI exit 1)
        ├── ManualDrainsDisabled     409: `sources.manual.enabled: false` in the controller's config
        └── ControllerError          any other error status, or an answer that is not the documented JSON

Bodies come back as the API's JSON objects (controller/api/shapes.py documents them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from controller.core.errors import ConfigError, DrainctlError, PermanentError, TemporaryError

DEFAULT_TIMEOUT_S = 10.0
"""Per request. Generous: a reset waits for the host's agent, which waits for the kernel."""


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
    ) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, trust_env=False,
            transport=transport,
        )

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
        optional = {"deadline_s": deadline_s, "rate_per_s": rate_per_s, "request_id": request_id}
        body.update({key: value for key, value in optional.items() if value is not None})
        return self._call("POST", "/v1/drains", json=body)

    def push_event(self, instance: str, *, kind: str, not_after: float, notice_id: str) -> dict[str, Any]:
        """Push a local platform notice (post the same notice to the host's agent too): `{"disposition", "drain"}`."""
        body = {"instance": instance, "kind": kind, "not_after": not_after, "id": notice_id, "source": "local"}
        return self._call("POST", "/v1/events", json=body)

    def instances(self) -> list[dict[str, Any]]:
        return _list(self._call("GET", "/v1/instances"), "instances")

    def instance(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/instances/{_segment(name)}")

    def reset(self, name: str) -> dict[str, Any]:
        """`{"instance", "done", "reset", "why", "drain"}`: how many sockets this call reset."""
        return self._call("POST", f"/v1/instances/{_segment(name)}/reset")

    def history(self, *, limit: int = 100, instance: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, str | int] = {"limit": limit}
        if instance:
            params["instance"] = instance
        return _list(self._call("GET", "/v1/history", params=params), "drains")

    def drain_record(self, drain_id: int) -> dict[str, Any]:
        """`{"drain", "journal"}`: one episode and its journal lines."""
        return self._call("GET", f"/v1/drains/{drain_id}")

    def _call(
        self, method: str, path: str, *, json: Any = None, params: dict[str, str | int] | None = None
    ) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.TimeoutException as exc:
            raise ControllerUnreachable(f"the controller at {self.base_url} did not answer {method} {path} in "
                                        "time") from exc
        except httpx.TransportError as exc:
            raise ControllerUnreachable(f"cannot reach the controller at {self.base_url}: {_why(exc)}") from exc
        return self._body(response, f"{method} {path}")

    def _body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        status = response.status_code
        if status == 401:
            raise ControllerRefusedToken(f"the controller at {self.base_url} refused the token (401)")
        if not response.is_success:
            reason, kind = _reason(response), _BY_STATUS.get(status)
            if reason is None:
                raise ControllerError(f"{self.base_url} answered {what} with HTTP {status} but not with drainctl's "
                                      "JSON: is it the controller's API?")
            if kind is None:
                raise ControllerError(f"{what}: HTTP {status}: {reason}")
            raise kind(reason)
        try:
            body = response.json()
        except ValueError as exc:
            raise ControllerError(f"{what}: HTTP {status}, but the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise ControllerError(f"{what}: expected a JSON object, got {type(body).__name__}")
        return body


def _why(exc: httpx.TransportError) -> str:
    """The operating system's words when there are some (`connection refused`), else httpx's."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


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
