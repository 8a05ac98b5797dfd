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

from controller.core.errors import PermanentError
from testbed.addresses import HostPort, parse_hostport
from testbed.harness.http import ProcessApi
from testbed.harness.supervising import Supervised


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
        self._admin_api = ProcessApi(self.admin_url, name=f"server {self.name}", token=admin_token, keep_alive=False)
        self._api = ProcessApi(self.http_url, name=f"server {self.name}", keep_alive=False)

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
        return self._admin_api.ok(method, path, json=json)

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
        return self._api.metric(name, labels)

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
