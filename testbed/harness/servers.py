"""A reference server the harness started, and the handles tests use on it (admin API, metrics, signals).

The server is `drainctl testbed server` in a child process; it prints
`{"event": "ready", "name", "listen", "admin", "pid"}` once both ports are bound.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from controller.core.errors import PermanentError, TemporaryError
from testbed.addresses import HostPort, parse_hostport
from testbed.harness.supervising import Supervised

_HTTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ServerEndpoints:
    """What a server's ready line says."""

    name: str
    listen: HostPort
    admin: HostPort
    pid: int

    @classmethod
    def from_ready(cls, event: Mapping[str, Any]) -> ServerEndpoints:
        try:
            return cls(
                name=str(event["name"]),
                listen=parse_hostport(str(event["listen"]), option="ready.listen"),
                admin=parse_hostport(str(event["admin"]), option="ready.admin"),
                pid=int(event["pid"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PermanentError(f"server ready line lacks name/listen/admin/pid: {dict(event)!r}") from exc


def _sample_names(family: Metric) -> set[str]:
    """The sample names a family can have even before it has samples (a labelled counter starts empty)."""
    if family.type == "counter":
        return {family.name + "_total"}
    if family.type in ("gauge", "unknown", "untyped"):
        return {family.name}
    return {sample.name for sample in family.samples}


class ServerProcess:
    """A running reference server: its addresses, admin calls, metrics and fault signals."""

    def __init__(self, process: Supervised, endpoints: ServerEndpoints, admin_token: str) -> None:
        self.process = process
        self.name = endpoints.name
        self.listen = endpoints.listen
        self.admin = endpoints.admin
        self.admin_token = admin_token
        self.pid = process.pid
        self.paused = False

    def __repr__(self) -> str:
        return f"ServerProcess({self.name!r}, listen={self.listen}, pid={self.pid})"

    @property
    def http_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.listen}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin}"

    def _admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        try:
            response = httpx.request(
                method, self.admin_url + path, json=json, headers=headers, timeout=_HTTP_TIMEOUT_S, trust_env=False
            )
        except httpx.HTTPError as exc:
            raise TemporaryError(f"server {self.name}: {method} {path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise PermanentError(f"server {self.name}: {method} {path} answered {response.status_code}")
        return response

    def drain(self, rate_per_s: float) -> None:
        """Ask the server to drain gracefully, closing `rate_per_s` sockets per second with code 1012."""
        self._admin("POST", "/admin/drain", json={"rate_per_s": rate_per_s})

    def status(self) -> dict[str, Any]:
        """The admin status: name, draining, open_sockets, fault, drain_rate_per_s."""
        body: dict[str, Any] = self._admin("GET", "/admin/status").json()
        return body

    def open_sockets(self) -> int:
        return int(self.status()["open_sockets"])

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The sum of the samples called `name` (e.g. `drainctl_testbed_connects_total`) whose labels include
        `labels`; 0.0 when the metric exists but no sample matches yet. Unknown metric names are an error."""
        try:
            response = httpx.get(self.http_url + "/metrics", timeout=_HTTP_TIMEOUT_S, trust_env=False)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise TemporaryError(f"server {self.name}: GET /metrics failed: {exc}") from exc
        wanted = dict(labels or {})
        families = [f for f in text_string_to_metric_families(response.text) if name in _sample_names(f)]
        if not families:
            raise PermanentError(f"server {self.name}: /metrics has no metric {name!r}")
        return sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == name and wanted.items() <= sample.labels.items()
        )

    def pause(self) -> None:
        """SIGSTOP: the wedged server. The kernel still accepts connections; nothing answers."""
        self.process.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.process.signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM and wait; the exit code, or None if it is still running after `timeout_s`."""
        self.resume()
        self.process.signal(signal.SIGTERM)
        return self.process.wait_exit(timeout_s)

    def kill(self) -> int | None:
        """SIGKILL: the VM vanished. The kernel closes the sockets (clients see a reset or EOF)."""
        self.process.signal(signal.SIGKILL)
        return self.process.wait_exit(10.0)
