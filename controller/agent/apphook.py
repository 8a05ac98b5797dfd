"""The app's own drain hook: the agent asks the server it runs beside to drain gracefully.

The reference server's contract: `POST {drain_url}` with `{"rate_per_s": R}` and the app's bearer token,
answered 202 `{"accepted": true, "open_sockets": N, "rate_per_s": R}`. httpx errors become ours here:

    AppHookError
    ├── AppUnreachable (TemporaryError)   connection refused, DNS, reset: nobody is listening
    ├── AppTimeout (TemporaryError)       no answer in time: a stopped (SIGSTOP) or wedged app
    └── AppRejected (PermanentError)      the app answered, but not with a 2xx JSON object
"""

from __future__ import annotations

from typing import Any

import httpx

from controller.core.errors import PermanentError, TemporaryError


class AppHookError(Exception):
    """Any failure of the app's drain hook (each subclass is also a TemporaryError or a PermanentError)."""


class AppUnreachable(AppHookError, TemporaryError):
    pass


class AppTimeout(AppHookError, TemporaryError):
    pass


class AppRejected(AppHookError, PermanentError):
    pass


class AppDrainHook:
    """Calls the app's drain hook; one shared connection pool for the agent's lifetime."""

    def __init__(self, drain_url: str, token: str, *, timeout_s: float) -> None:
        self._url = drain_url
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)

    async def drain(self, rate_per_s: float) -> dict[str, Any]:
        """Ask the app to start draining at `rate_per_s`; its JSON answer."""
        try:
            response = await self._http.post(self._url, json={"rate_per_s": rate_per_s})
        except httpx.TimeoutException as exc:
            raise AppTimeout(f"the app's drain hook did not answer within {self._timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise AppUnreachable(f"the app's drain hook is unreachable: {type(exc).__name__}: {exc}") from exc
        return _accepted(response)

    async def aclose(self) -> None:
        await self._http.aclose()


def _accepted(response: httpx.Response) -> dict[str, Any]:
    if not response.is_success:
        raise AppRejected(f"the app refused the drain: HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError as exc:
        raise AppRejected("the app answered the drain with something other than JSON") from exc
    if not isinstance(body, dict):
        raise AppRejected("the app answered the drain with JSON that is not an object")
    return body
