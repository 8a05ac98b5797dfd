"""The harness's HTTP calls to a process it started (an agent, a controller, a server's admin port, Prometheus).

One keep-alive client per process, built by drainctl's own `controller.core.http` (so a unit test may inject an
httpx transport), and its error mapping: nothing answering is a `TemporaryError` (a process still starting
fails in many ways; `wait_for` tries again), an answer that is not a 2xx where one was needed a `PermanentError`
naming the status and the body (`wait_for` stops at once: a test must see the refusal, not a timeout).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, bearer, client
from testbed.harness.exposition import metric_sum

TIMEOUT_S = 10.0
_ANSWERED = "{where}: {what} answered {status}: {reason}"


class ProcessApi:
    """`name` starts every error message ("agent A", "controller"); `token`, when given, goes in every request.

    `keep_alive=False` closes each connection after its answer: a reference server's `/metrics` is on the port
    whose established sockets the agent counts, and the harness must not be one of them.
    """

    def __init__(
        self, url: str, *, name: str, token: str | None = None, timeout_s: float = TIMEOUT_S, keep_alive: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.name = name
        limits = httpx.Limits() if keep_alive else httpx.Limits(max_keepalive_connections=0)
        self._http = client(base_url=url, headers=bearer(token) if token else None, timeout=timeout_s,
                            limits=limits, transport=transport)
        self._errors = HttpErrors(name, timeout=TemporaryError, unreachable=TemporaryError, unavailable=PermanentError,
                                  credentials_text=_ANSWERED, status_text=_ANSWERED)

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """The raw answer, any status (`token`: another one than the process's, e.g. a wrong one)."""
        headers = bearer(token) if token is not None else None
        with self._errors.translating(f"{method} {path}"):
            return self._http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, which must be a 2xx."""
        return self._errors.check(self.request(method, path, **kwargs), f"{method} {path}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """A 2xx answer's JSON body; None when the answer is not JSON."""
        response = self.ok(method, path, **kwargs)
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else None

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The sum of the samples of `/metrics` called `name` whose labels include `labels` (exposition.py)."""
        return metric_sum(self.ok("GET", "/metrics").text, name, labels, where=self.name)

    def close(self) -> None:
        self._http.close()
