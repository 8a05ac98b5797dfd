"""drainctl's one boundary with httpx: building a client, and turning its errors and statuses into ours.

Every HTTP client in drainctl (the on-call's, the controller's client of an agent, the Compute API's, the IMDS and
GCE metadata watchers', the app's drain hook, the testbed's) is built with `client()` or `async_client()`, so each
takes an injectable `transport` (httpx.MockTransport in unit tests of its own parsing, the network by default) and
ignores proxy variables unless asked (`trust_env`). Each names its own error classes in one `HttpErrors`:

    httpx.TimeoutException      -> errors.timeout      (TemporaryError)  "<where> did not answer <what> in time"
    other httpx.TransportError  -> errors.unreachable  (TemporaryError)  "<where> is unreachable (<what>): <why>"
    HTTP 429, 5xx               -> errors.unavailable  (TemporaryError; `delay_s` = Retry-After, else 1 s)
    HTTP 401, 403               -> errors.credentials  (PermanentError)  "<where> refused the credentials (...)"
    any other status but a 2xx  -> errors.refused      (PermanentError)  "<where>: <what>: HTTP <status>: <reason>"
    not a JSON object body      -> errors.malformed    (PermanentError)  "<where>: <what>: the answer is not JSON"
                                   (`json_object()`, for a client whose API answers with JSON objects)

`where` names the peer (a base URL, "IMDS"), `what` the request ("GET /v1/notices": a method and a path, never
a query or a header, so never a token). Each message is a template a client may reword, with the fields {where},
{what}, {why} (the operating system's words: "connection refused"), {status}, {reason} (the start of the body,
or what the client's `reason` reads from its API's error body) and {problem} (what is wrong with a body). An
error class that mixes in `WithStatus` keeps the status it came from; a client that maps some statuses its own
way overrides `from_status` (the on-call's).

    errors = HttpErrors("IMDS", timeout=ImdsUnavailable, unreachable=ImdsUnavailable, ...)
    response = await send(http, errors, "GET", PATH)    # a 2xx, or errors.* raised: never httpx's
    with errors.translating("GET /x"):                  # or by hand: a transport error becomes ours ...
        response = await http.get("/x")
    error = errors.from_status(response, "GET /x")      # ... and so does a status (None for a 2xx)
    body = errors.json_object(response, "GET /x")       # a dict, or errors.malformed raised

`retry_after_s` (RFC 9110 §10.2.3) is the one Retry-After parser: delta-seconds or an HTTP date, as seconds.
This API is stable: other modules build on it.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Required, TypedDict, Unpack

import httpx

from controller.core.errors import DrainctlError, PermanentError, TemporaryError

DEFAULT_DELAY_S = 1.0
"""`delay_s` of a 429/5xx that gave no usable Retry-After."""
CREDENTIAL_STATUSES = frozenset({401, 403})


class WithStatus(DrainctlError):
    """Mix into an error class that keeps the HTTP status it came from (`status`, 0 when there was no answer)."""

    def __init__(self, message: str, *, status: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Delta-seconds (digits only) or an HTTP date, as seconds from now (a past date: 0); None when absent or
    unusable ("-1", "soon")."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # the asctime form and "-0000" carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def reason_text(response: httpx.Response) -> str:
    """The start of the answer's body, or "no reason given"."""
    return response.text[:200] or "no reason given"


def why(exc: BaseException) -> str:
    """The operating system's words when there are some (`connection refused`), else httpx's."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def bearer(token: str) -> dict[str, str]:
    """The `Authorization` header of a bearer token (sent, never logged)."""
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class HttpErrors:
    """One client's names for its failures: the error class of each kind, and the words of each message."""

    where: str
    timeout: type[TemporaryError] = TemporaryError
    unreachable: type[TemporaryError] = TemporaryError
    unavailable: type[DrainctlError] = TemporaryError
    credentials: type[DrainctlError] = PermanentError
    refused: type[DrainctlError] = PermanentError
    malformed: type[DrainctlError] = PermanentError
    reason: Callable[[httpx.Response], str] = reason_text
    timeout_text: str = "{where} did not answer {what} in time"
    unreachable_text: str = "{where} is unreachable ({what}): {why}"
    credentials_text: str = "{where} refused the credentials ({what}: HTTP {status}): {reason}"
    status_text: str = "{where}: {what}: HTTP {status}: {reason}"
    malformed_text: str = "{where}: {what}: {problem}"

    def from_transport(self, exc: httpx.TransportError, what: str) -> TemporaryError:
        """The error a request that got no answer becomes."""
        if isinstance(exc, httpx.TimeoutException):
            return self.timeout(self.timeout_text.format(where=self.where, what=what))
        return self.unreachable(self.unreachable_text.format(where=self.where, what=what, why=why(exc)))

    def from_status(self, response: httpx.Response, what: str) -> DrainctlError | None:
        """The error an answer that is not a 2xx becomes; None for a 2xx."""
        status = response.status_code
        if response.is_success:
            return None
        fields = {"where": self.where, "what": what, "status": status, "reason": self.reason(response)}
        if status in CREDENTIAL_STATUSES:
            return _error(self.credentials, self.credentials_text.format(**fields), status)
        message = self.status_text.format(**fields)
        if status == 429 or status >= 500:
            delay_s = retry_after_s(response.headers.get("Retry-After")) or DEFAULT_DELAY_S
            return _error(self.unavailable, message, status, delay_s=delay_s)
        return _error(self.refused, message, status)

    @contextmanager
    def translating(self, what: str) -> Iterator[None]:
        """Inside: an httpx.TransportError raised becomes `from_transport`'s error."""
        try:
            yield
        except httpx.TransportError as exc:
            raise self.from_transport(exc, what) from exc

    def json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The answer's body, which must be a JSON object; else `malformed` ("the answer is not JSON")."""
        try:
            body = response.json()
        except ValueError as exc:
            raise self._malformed(what, response, "the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise self._malformed(what, response, f"expected a JSON object, got {type(body).__name__}")
        return body

    def _malformed(self, what: str, response: httpx.Response, problem: str) -> DrainctlError:
        message = self.malformed_text.format(where=self.where, what=what, status=response.status_code, problem=problem)
        return _error(self.malformed, message, response.status_code)

    def check(self, response: httpx.Response, what: str) -> httpx.Response:
        """`response` when it is a 2xx; else raise what it becomes."""
        error = self.from_status(response, what)
        if error is not None:
            raise error
        return response


def _error(kind: type[DrainctlError], message: str, status: int, *, delay_s: float | None = None) -> DrainctlError:
    kwargs: dict[str, Any] = {}
    if issubclass(kind, WithStatus):
        kwargs["status"] = status
    if delay_s is not None and issubclass(kind, TemporaryError):
        kwargs["delay_s"] = delay_s
    return kind(message, **kwargs)


class ClientOptions(TypedDict, total=False):
    """What `client()` and `async_client()` pass on to httpx (`timeout`: seconds, or an httpx.Timeout)."""

    base_url: str
    headers: Mapping[str, str] | None
    timeout: Required[float | httpx.Timeout]
    trust_env: bool
    """Honour proxy variables (HTTP_PROXY, NO_PROXY); default False: the peer is reached as configured."""
    limits: httpx.Limits
    """Connection pool limits (`max_keepalive_connections=0`: one connection per request, closed after it)."""


def client(*, transport: httpx.BaseTransport | None = None, **options: Unpack[ClientOptions]) -> httpx.Client:
    """A synchronous client; `transport` None: the network."""
    return httpx.Client(transport=transport, **_options(options))


def async_client(
    *, transport: httpx.AsyncBaseTransport | None = None, **options: Unpack[ClientOptions]
) -> httpx.AsyncClient:
    """An asyncio client; `transport` None: the network."""
    return httpx.AsyncClient(transport=transport, **_options(options))


def system_trust() -> ssl.SSLContext:
    """The operating system's trust store, as OpenSSL finds it (the image's bundle, /etc/ssl/certs on Debian;
    SSL_CERT_FILE / SSL_CERT_DIR where set): what `curl` in the boot scripts trusts, and what the SRE who adds a
    corporate or private CA to the image expects every client on the VM to trust. httpx alone would trust only
    certifi's copy of the public roots, and ignores SSL_CERT_FILE unless proxy variables are honoured too
    (`trust_env`), so a VM's controller refused a certificate its own `curl` accepted (the box found it: every
    Compute and ARM call failed with CERTIFICATE_VERIFY_FAILED). Built once: loading a bundle costs ~35 ms."""
    global _TRUST
    if _TRUST is None:
        context = ssl.create_default_context()
        if not context.cert_store_stats()["x509_ca"]:  # no bundle file loaded (a bare image, or a hashed
            import certifi  # directory only): certifi's public roots are added, as httpx alone would have used

            context.load_verify_locations(cafile=certifi.where())
        _TRUST = context
    return _TRUST


_TRUST: ssl.SSLContext | None = None


def _options(options: ClientOptions) -> dict[str, Any]:
    return {"trust_env": False, "verify": system_trust(), **options,
            "base_url": options.get("base_url", "").rstrip("/")}


async def send(http: httpx.AsyncClient, errors: HttpErrors, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """`http.request(method, path, **kwargs)`, a 2xx answer or one of `errors`' classes raised."""
    what = f"{method} {path}"
    with errors.translating(what):
        response = await http.request(method, path, **kwargs)
    return errors.check(response, what)


def send_sync(http: httpx.Client, errors: HttpErrors, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """`send` for a synchronous client."""
    what = f"{method} {path}"
    with errors.translating(what):
        response = http.request(method, path, **kwargs)
    return errors.check(response, what)
