"""A node agent the harness started beside a reference server, and the calls tests make on it.

The agent is `drainctl agent --config agent.yaml` in a child process (docs/agent.md); it prints
`{"event": "ready", "listen": "HOST:PORT", "pid": PID}` once its API is bound. Its service port is the server's
WebSocket port and its drain hook the server's admin drain route, so it counts and resets exactly the sockets
HAProxy holds to that server.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from pydantic import BaseModel, ValidationError

from controller.core.errors import PermanentError
from controller.protocol import agent as wire
from testbed.addresses import HostPort, ready_address
from testbed.harness.http import ProcessApi
from testbed.harness.servers import ServerProcess
from testbed.harness.supervising import Supervised

_HTTP_TIMEOUT_S = 10.0

Answer = TypeVar("Answer", bound=BaseModel)

APP_TIMEOUT_S = 0.5
"""The agent's drain-hook timeout in the testbed (agent default 2 s): a stopped server shows as a 504 within half
a second. A slow answer from a healthy server costs nothing: the app got the request and drains anyway, and the
controller sees the count fall."""


def render_config(
    server: ServerProcess,
    *,
    token_file: Path,
    app_token_file: Path,
    instance: str,
    app_timeout_s: float = APP_TIMEOUT_S,
    fallback: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """agent.yaml for an agent beside `server`: its WebSocket port is the service port; `extra` adds top-level
    keys (`controllers:` and `push:` for pushes, `webhooks`, `log`)."""
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "token_file": str(token_file),
        "service_port": server.listen.port,
        "service_address": server.listen.host,
        "instance": instance,
        "app": {
            "drain_url": f"{server.admin_url}/admin/drain",
            "not_ready_url": f"{server.admin_url}/admin/not-ready",
            "token_file": str(app_token_file),
            "timeout_s": app_timeout_s,
        },
    }
    if fallback is not None:
        config["fallback"] = dict(fallback)
    config.update(extra or {})
    return "# rendered by drainctl's testbed harness\n" + yaml.safe_dump(config, sort_keys=False)


class AgentProcess:
    """A running node agent: its address, its token, and reads of its notices, counts and metrics."""

    def __init__(self, process: Supervised, ready: Mapping[str, Any], *, name: str, token: str, token_file: Path,
                 server: ServerProcess) -> None:
        self.process = process
        self.name = name
        """The instance name (the server's name), as the controller knows it."""
        self.server = server
        self.token = token
        self.token_file = token_file
        self.listen: HostPort = ready_address(ready, "listen", who=f"agent {name}")
        self.pid = process.pid
        self._api = ProcessApi(self.url, name=f"agent {name}", token=token, timeout_s=_HTTP_TIMEOUT_S)
        """One keep-alive connection pool (thread-safe): a client per call would cost a TLS context each time."""

    def __repr__(self) -> str:
        return f"AgentProcess({self.name!r}, url={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"http://{self.listen}"

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """One call with the agent's token (or `token`, e.g. a wrong one); the raw response, any status."""
        return self._api.request(method, path, token=token, **kwargs)

    def _ok(self, method: str, path: str, *, json: Any = None) -> Any:
        return self._api.json(method, path, json=json)

    def connections(self) -> int:
        """Established sockets on the server's port, counted by the kernel."""
        return self._answer(wire.ConnectionsAnswer, "GET", wire.CONNECTIONS).established

    def post_notice(self, notice_id: str, kind: str, not_after: float) -> wire.Notice:
        """Report a platform notice to the agent (what the platform's notice reader does on a real host)."""
        body = {"id": notice_id, "kind": kind, "not_after": not_after}
        return self._answer(wire.Notice, "POST", wire.NOTICES, json=body)

    def notice(self, notice_id: str) -> wire.Notice:
        return self._answer(wire.Notice, "GET", wire.notice_path(notice_id))

    def _answer(self, model: type[Answer], method: str, path: str, *, json: Any = None) -> Answer:
        """The agent's answer as its wire-protocol model (controller/protocol/agent.py)."""
        try:
            return model.model_validate(self._ok(method, path, json=json))
        except ValidationError as exc:
            raise PermanentError(f"agent {self.name}: {method} {path}: malformed answer: {exc}") from exc

    def metrics_text(self) -> str:
        return self._api.ok("GET", "/metrics").text

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """e.g. `metric("drainctl_agent_drains_requested_total", {"by": "controller"})`."""
        return self._api.metric(name, labels)

    def close(self) -> None:
        """Release the HTTP connection pool (the fleet does, when it closes)."""
        self._api.close()

    def kill(self) -> int | None:
        """SIGKILL (the host vanished with its server)."""
        self.process.signal(signal.SIGKILL)
        return self.process.wait_exit(10.0)
