"""The controller's client of Azure Resource Manager: a scale set's VMs and its VMs' network interfaces.

Tokens come from the VM's managed identity through azure-identity's `ManagedIdentityCredential` (IMDS
`/metadata/identity/oauth2/token`, resource https://management.azure.com; azure-identity caches and renews them),
or from a token file, or none (a fake). Lists follow `nextLink` (an absolute URL) until it is absent.

Errors become ours at this boundary:

    ArmUnavailable (TemporaryError)   429, 5xx, timeouts, connection errors; `delay_s` honours Retry-After
    ArmMalformed (TemporaryError)     a 200 whose body is not the documented JSON
    ArmRefused (PermanentError)       401/403 (an expired or refused token, a missing role), 404, other 4xx
    ArmCredentialsError (TemporaryError)  azure-identity could not get a token (IMDS down, no identity yet)

A page that fails with ArmUnavailable is asked again (tenacity, controller/core/retrying.py) before the error
reaches the caller; ARM's error body `{"error": {"code", "message"}}` gives the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, WithStatus, async_client, send
from controller.core.retrying import backoff

log = logging.getLogger(__name__)

ARM_URL = "https://management.azure.com"
SCOPE = "https://management.azure.com/.default"


class ArmUnavailable(TemporaryError):
    pass


class ArmMalformed(TemporaryError):
    pass


class ArmRefused(WithStatus, PermanentError):
    """`status`: the HTTP status of the refusal."""


class ArmCredentialsError(TemporaryError):
    pass


class TokenSource(Protocol):
    async def headers(self) -> Mapping[str, str]: ...

    async def aclose(self) -> None: ...


class Anonymous:
    async def headers(self) -> Mapping[str, str]:
        return {}

    async def aclose(self) -> None:
        return None


class StaticToken(Anonymous):
    """An explicit bearer token (read from a file by the config). Never logged."""

    def __init__(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    async def headers(self) -> Mapping[str, str]:
        return self._headers


class ManagedIdentity:
    """The VM's managed identity, through azure-identity (its async credential: no thread, its own cache)."""

    def __init__(self, client_id: str | None = None) -> None:
        from azure.identity.aio import ManagedIdentityCredential

        self._credential = ManagedIdentityCredential(client_id=client_id)

    async def headers(self) -> Mapping[str, str]:
        from azure.core.exceptions import AzureError

        try:
            token = await self._credential.get_token(SCOPE)
        except AzureError as exc:
            raise ArmCredentialsError(f"azure: no token from the managed identity: {exc}", delay_s=2.0) from exc
        return {"Authorization": f"Bearer {token.token}"}

    async def aclose(self) -> None:
        await self._credential.close()


class ArmApi:
    def __init__(
        self,
        *,
        credentials: TokenSource,
        base_url: str = ARM_URL,
        timeout_s: float = 10.0,
        attempts: int = 4,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self._credentials = credentials
        self._http = async_client(base_url=base_url, timeout=timeout_s, transport=transport)
        self._attempts = attempts
        self._wait = backoff(initial_s=retry_initial_s, max_s=retry_max_s)

    async def list(self, path: str, api_version: str) -> list[Any]:
        """Every item of a list (`value`), following `nextLink`: its path and query on the configured ARM URL
        (the token never goes to a host an answer names)."""
        items: list[Any] = []
        url, params = path, {"api-version": api_version}
        while True:
            body = await self._page(url, params)
            found, link = body.get("value"), body.get("nextLink")
            if not isinstance(found, list) or not isinstance(link, str | None):
                raise ArmMalformed(f"azure: {path}: value is not a list, or nextLink not a string")
            items.extend(found)
            if not link:
                return items
            following = httpx.URL(link)
            url, params = following.path, dict(following.params)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._credentials.aclose()

    async def _page(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        retrying = AsyncRetrying(retry=retry_if_exception_type(ArmUnavailable), stop=stop_after_attempt(self._attempts),
                                 wait=self._wait, before_sleep=_log_retry, reraise=True)
        async for attempt in retrying:
            with attempt:
                headers = dict(await self._credentials.headers())
                response = await send(self._http, _ERRORS, "GET", url, params=params, headers=headers)
                return _ERRORS.json_object(response, f"GET {url}")
        raise AssertionError("unreachable: tenacity reraises the last error")


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"[:200]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "no reason given"


_ERRORS = HttpErrors(
    "azure resource manager", timeout=ArmUnavailable, unreachable=ArmUnavailable, unavailable=ArmUnavailable,
    credentials=ArmRefused, refused=ArmRefused, malformed=ArmMalformed, reason=_reason,
)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    delay_s = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("azure: %s; asking for the page again in %.1f s (attempt %d)", error, delay_s,
                state.attempt_number + 1)
