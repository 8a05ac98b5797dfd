"""The app's own drain hook: the agent asks the server it runs beside to drain gracefully.

The reference server's contract: `POST {drain_url}` with `{"rate_per_s": R}` and the app's bearer token,
answered 202 `{"accepted": true, "open_sockets": N, "rate_per_s": R}`; and, when the app has one, its
not-ready hook: `POST {not_ready_url}` answered 202 `{"ready": false, ...}` (out of rotation, still
serving). httpx errors become ours here (through the shared mapping, controller/core/http.py):

    AppHookError
    ├── AppUnreachable (TemporaryError)   connection refused, DNS, reset: nobody is listening
    ├── AppTimeout (TemporaryError)       no answer in time: a stopped (SIGSTOP) or wedged app
    └── AppRejected (PermanentError)      the app answered, but not with a 2xx JSON object
"""

from __future__ import annotations

from typing import Any

import httpx

from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, async_client, bearer, send


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

    def __init__(
        self,
        drain_url: str,
        token: str,
        *,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
        not_ready_url: str | None = None,
    ) -> None:
        """`transport`: for unit tests of the hook's own parsing (httpx.MockTransport); None: the network."""
        self._url = drain_url
        self.not_ready_url = not_ready_url
        # trust_env: proxy variables apply here, as they always have (NO_PROXY covers a local app).
        self._http = async_client(headers=bearer(token), timeout=timeout_s, transport=transport, trust_env=True)
        refused, late = "the app refused the drain: HTTP {status}", f"{{where}} did not answer within {timeout_s:g} s"
        self._errors = HttpErrors(
            "the app's drain hook", timeout=AppTimeout, unreachable=AppUnreachable, unavailable=AppRejected,
            credentials=AppRejected, refused=AppRejected, malformed=AppRejected, timeout_text=late,
            unreachable_text="{where} is unreachable: {why}", credentials_text=refused, status_text=refused,
            malformed_text="the app answered the drain with something other than a JSON object ({problem})",
        )

    async def drain(self, rate_per_s: float) -> dict[str, Any]:
        """Ask the app to start draining at `rate_per_s`; its JSON answer."""
        response = await send(self._http, self._errors, "POST", self._url, json={"rate_per_s": rate_per_s})
        return self._errors.json_object(response, "POST")

    async def not_ready(self) -> bool | None:
        """Ask the app to leave rotation (not ready, still serving); whether it is still ready (None: the app
        has no not-ready hook)."""
        if self.not_ready_url is None:
            return None
        response = await send(self._http, self._errors, "POST", self.not_ready_url, json={})
        return self._errors.json_object(response, "POST").get("ready") is not False

    async def aclose(self) -> None:
        await self._http.aclose()

