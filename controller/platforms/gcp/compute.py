"""The controller's client of the Compute Engine API: regional MIGs' managed instances and the health a backend
service sees of their instances (`backendServices.getHealth`), with their credentials.

Credentials are Application Default Credentials through google-auth (the metadata server's service account on a
GCE VM, or the key file `GOOGLE_APPLICATION_CREDENTIALS` names), a key file named in the config, an explicit
token (a fake, a pre-fetched token), or none (a fake). google-auth is synchronous; its refreshes run in a thread.

Errors become ours at this boundary:

    ComputeUnavailable (TemporaryError)  429, 5xx, timeouts, connection errors; `delay_s` honours Retry-After
    ComputeMalformed (TemporaryError)    a 200 whose body is not the documented JSON (logged, polled again)
    ComputeRefused (PermanentError)      401/403/404 and other 4xx: credentials, permissions, a wrong MIG name
    CredentialsError (PermanentError)    google-auth could not find or refresh credentials

The mapping of httpx errors and statuses is the shared one (controller/core/http.py). A page that fails with a
temporary error is retried (controller/core/retrying.py: doubling, at least Retry-After, capped) before the error
reaches the caller, so one 429 in the middle of a paginated list costs a pause, not the list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, WithStatus, async_client, send
from controller.core.retrying import backoff

log = logging.getLogger("drainctl.platforms.gcp.compute")

COMPUTE_URL = "https://compute.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/compute.readonly",)
"""Enough for every call here, getHealth too (a POST that only reads)."""
GROUP_URL_BASE = "https://www.googleapis.com/compute/v1"


class ComputeUnavailable(TemporaryError):
    pass


class ComputeMalformed(TemporaryError):
    pass


class ComputeRefused(WithStatus, PermanentError):
    """`status`: the HTTP status of the refusal."""


class CredentialsError(PermanentError):
    pass


class TokenSource(Protocol):
    async def headers(self) -> Mapping[str, str]:
        """Authorization headers for the next request (refreshing the token when needed)."""
        ...


class Anonymous:
    """No credentials (a fake on loopback)."""

    async def headers(self) -> Mapping[str, str]:
        return {}


class StaticToken:
    """An explicit bearer token (read from a file by the config). Never logged."""

    def __init__(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    async def headers(self) -> Mapping[str, str]:
        return self._headers


class GoogleCredentials:
    """google-auth credentials: ADC (`adc`) or a key file; refreshed in a thread when expired."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._lock = asyncio.Lock()

    @classmethod
    def application_default(cls) -> GoogleCredentials:
        import google.auth
        from google.auth import exceptions

        try:
            credentials, _project = google.auth.default(scopes=list(SCOPES))
        except exceptions.GoogleAuthError as exc:
            raise CredentialsError(f"gcp: no Application Default Credentials: {exc}") from exc
        return cls(credentials)

    @classmethod
    def from_file(cls, path: str) -> GoogleCredentials:
        """A service account key file (JSON); its `token_uri` is where tokens are fetched."""
        from google.auth import exceptions
        from google.oauth2 import service_account

        try:
            load = service_account.Credentials.from_service_account_file
            credentials = load(path, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError, exceptions.GoogleAuthError) as exc:
            raise CredentialsError(f"gcp: cannot use the key file {path!r}: {exc!r}") from exc
        return cls(credentials)

    async def headers(self) -> Mapping[str, str]:
        async with self._lock:
            if not self._credentials.valid:
                await asyncio.to_thread(self._refresh)
            return {"Authorization": f"Bearer {self._credentials.token}"}

    def _refresh(self) -> None:
        from google.auth import exceptions
        from google.auth.transport.requests import Request

        try:
            self._credentials.refresh(Request())
        except exceptions.TransportError as exc:
            raise ComputeUnavailable(f"gcp: token refresh failed: {exc}", delay_s=1.0) from exc
        except exceptions.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise ComputeUnavailable(f"gcp: token refresh failed: {exc}", delay_s=1.0) from exc
            raise CredentialsError(f"gcp: token refresh refused: {exc}") from exc


@dataclass(frozen=True)
class ManagedInstances:
    """One MIG's managed instances, as raw JSON objects (the source parses them, skipping malformed ones)."""

    items: list[Any]
    pages: int


class ComputeApi:
    """`listManagedInstances` of regional MIGs, the project's instances and MIGs, instance templates; paginated,
    with retries per page."""

    def __init__(
        self,
        *,
        project: str,
        credentials: TokenSource,
        base_url: str = COMPUTE_URL,
        timeout_s: float = 10.0,
        page_size: int = 500,
        attempts: int = 4,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`transport`: for unit tests of the client's own parsing (httpx.MockTransport); None: the network."""
        self._project = project
        self._credentials = credentials
        self._http = async_client(base_url=base_url, timeout=timeout_s, transport=transport)
        self._page_size = page_size
        self._attempts = attempts
        self._wait = backoff(initial_s=retry_initial_s, max_s=retry_max_s)

    async def list_managed_instances(self, region: str, mig: str) -> ManagedInstances:
        path = (f"/compute/v1/projects/{self._project}/regions/{region}/instanceGroupManagers/{mig}"
                "/listManagedInstances")
        items: list[Any] = []
        token: str | None = None
        pages = 0
        while True:
            body = await self._page(path, token)
            pages += 1
            found = body.get("managedInstances", [])
            if not isinstance(found, list):
                raise ComputeMalformed(f"gcp: {region}/{mig}: managedInstances is not a list")
            items.extend(found)
            token = body.get("nextPageToken")
            if not token:
                return ManagedInstances(items, pages)
            if not isinstance(token, str):
                raise ComputeMalformed(f"gcp: {region}/{mig}: nextPageToken is not a string")

    async def aggregated_instances(self) -> list[Any]:
        """Every instance of the project, all zones (`instances.aggregatedList`, paginated), as raw JSON objects."""
        return await self._aggregated("instances", "aggregated instances")

    async def backend_health(
        self, backend_service: str, group: str, *, region: str | None = None, timeout_s: float | None = None
    ) -> list[Any]:
        """`backendServices.getHealth` (`regionBackendServices.getHealth` with a `region`) of one instance group
        (`group`: its URL): the raw `healthStatus[]` entries. One attempt, no retries: the out-of-rotation step
        that asks is bounded by the budget and asks again itself (controller/platforms/gcp/backends.py)."""
        scope = "global" if region is None else f"regions/{region}"
        path = f"/compute/v1/projects/{self._project}/{scope}/backendServices/{backend_service}/getHealth"
        headers = dict(await self._credentials.headers())
        timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s
        response = await send(self._http, _ERRORS, "POST", path, json={"group": group}, headers=headers,
                              timeout=timeout)
        found = _ERRORS.json_object(response, f"POST {path}").get("healthStatus", [])
        if not isinstance(found, list):
            raise ComputeMalformed(f"gcp: {backend_service}: healthStatus is not a list")
        return found

    def group_url(self, region: str, name: str) -> str:
        """The URL of a regional MIG's instance group (it has the MIG's name), as backend services name it."""
        return f"{GROUP_URL_BASE}/projects/{self._project}/regions/{region}/instanceGroups/{name}"

    async def aggregated_groups(self) -> list[Any]:
        """Every managed instance group of the project, regional and zonal (`instanceGroupManagers.aggregatedList`,
        paginated), as raw JSON objects. No `filter`: a MIG has no `labels` field to filter on (its instances'
        labels come from its instance template and its `allInstancesConfig`), so the caller matches those."""
        return await self._aggregated("instanceGroupManagers", "aggregated instance group managers")

    async def _aggregated(self, kind: str, what: str) -> list[Any]:
        """One `aggregatedList` of `kind`, every page, every scope's list (`items: {scope: {kind: [...]}}`; a
        scope with only a `warning` has none), as raw JSON objects."""
        path = f"/compute/v1/projects/{self._project}/aggregated/{kind}"
        found: list[Any] = []
        token: str | None = None
        while True:
            body = await self._page(path, token, method="GET")
            scopes = body.get("items", {})
            if not isinstance(scopes, dict):
                raise ComputeMalformed(f"gcp: {what}: items is not an object")
            for scope in scopes.values():
                listed = scope.get(kind, []) if isinstance(scope, dict) else None
                if not isinstance(listed, list):
                    raise ComputeMalformed(f"gcp: {what}: a scope's {kind} is not a list")
                found.extend(listed)
            token = body.get("nextPageToken")
            if not token:
                return found
            if not isinstance(token, str):
                raise ComputeMalformed(f"gcp: {what}: nextPageToken is not a string")

    async def instance_template(self, url: str) -> dict[str, Any]:
        """One instance template (`instanceTemplates.get`, global or regional) by the URL a MIG names it with."""
        start = url.find("projects/")
        if start < 0 or "/instanceTemplates/" not in url:
            raise ComputeMalformed(f"gcp: {url[:200]!r} is not an instance template URL")
        return await self._retried(f"/compute/v1/{url[start:]}", None, "GET", paged=False)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _page(self, path: str, token: str | None, *, method: str = "POST") -> dict[str, Any]:
        return await self._retried(path, token, method, paged=True)

    async def _retried(self, path: str, token: str | None, method: str, *, paged: bool) -> dict[str, Any]:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(ComputeUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=self._wait,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._request(path, token, method, paged=paged)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _request(self, path: str, token: str | None, method: str, *, paged: bool) -> dict[str, Any]:
        params: dict[str, str | int] = {"maxResults": self._page_size} if paged else {}
        if token:
            params["pageToken"] = token
        headers = dict(await self._credentials.headers())
        response = await send(self._http, _ERRORS, method, path, params=params, headers=headers)
        return _ERRORS.json_object(response, f"{method} {path}")


def _reason(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or "no reason given"


_ERRORS = HttpErrors(
    "gcp", timeout=ComputeUnavailable, unreachable=ComputeUnavailable, unavailable=ComputeUnavailable,
    credentials=ComputeRefused, refused=ComputeRefused, malformed=ComputeMalformed, reason=_reason,
)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    delay_s = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning("gcp: %s; retrying the page in %.1f s (attempt %d)", error, delay_s, state.attempt_number + 1)
