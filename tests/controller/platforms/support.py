"""Helpers for the GCP and Azure tests: a real testbed server with a real node agent (any `platform:`), the
controller assembled from controller.yaml in the test's process, and WebSocket clients (waiting: tests/support).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.asyncio.client import ClientConnection, connect

from controller.app import Assembly, assemble
from controller.config import parse_config
from testbed import phoenix
from testbed.harness import Fleet, ServerProcess, Supervised
from testbed.harness.fleet import DRAINCTL
from tests.support import AGENT_TOKEN, TEST_BUDGET, running


class IdleApp:
    """Host actions of an app with no sockets, for the out-of-rotation step's tests (the step asks `not_ready`;
    a subclass says what asking does)."""

    async def not_ready(self) -> bool | None:
        return False

    async def drain(self, rate_per_s: float) -> None: ...

    async def connections(self) -> int:
        return 0

    async def reset(self) -> int:
        return 0


@dataclass
class Host:
    """A reference server and the node agent beside it."""

    name: str
    server: ServerProcess
    agent: Supervised
    agent_url: str
    config_path: Path
    token_file: Path

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        return httpx.request(method, self.agent_url + path, headers=headers, timeout=30, trust_env=False, **kwargs)

    def notices(self) -> list[dict[str, Any]]:
        notices: list[dict[str, Any]] = self.call("GET", "/v1/notices").json()["notices"]
        return notices

    def notice(self, notice_id: str) -> dict[str, Any] | None:
        return next((n for n in self.notices() if n["id"] == notice_id), None)

    def connections(self) -> int:
        return int(self.call("GET", "/v1/connections").json()["established"])

    def log(self) -> str:
        return self.agent.log_path.read_text(errors="replace")


def start_host(
    fleet: Fleet,
    name: str,
    *,
    platform: dict[str, Any] | None = None,
    fallback: dict[str, Any] | None = None,
    fault: str | None = None,
    state_file: Path | None = None,
    extra: dict[str, Any] | None = None,
    label: str | None = None,
) -> Host:
    """A server `name` (with `fault`) and an agent beside it with `platform:` and `fallback:` as given."""
    server = fleet.servers.get(name) or fleet.start_server(name, fault=fault)
    token_file = fleet.workdir / "agent.token"
    token_file.write_text(AGENT_TOKEN + "\n")
    app_token_file = fleet.workdir / f"{name}-app.token"
    app_token_file.write_text(server.admin_token)
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0", "token_file": str(token_file), "service_port": server.listen.port,
        "service_address": server.listen.host, "instance": name,
        "fallback": fallback if fallback is not None else {"enabled": False},
        "app": {"drain_url": f"{server.admin_url}/admin/drain", "token_file": str(app_token_file), "timeout_s": 1.0},
    }
    if platform is not None:
        config["platform"] = platform
    if state_file is not None:
        config["state_file"] = str(state_file)
    config.update(extra or {})
    label = label or f"agent-{name}"
    path = fleet.workdir / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = fleet.start_command(label, [*DRAINCTL, "agent", "--config", str(path)])
    ready = process.wait_event("ready", 60.0)
    return Host(name, server, process, f"http://{ready['listen']}", path, token_file)


def controller_config(workdir: Path, hosts: list[Host], **sources: Any) -> dict[str, Any]:
    """controller.yaml (as a mapping) for `hosts`, with quick engine passes; `sources` are added as given."""
    return {
        "journal": str(workdir / "controller.sqlite"),
        "budget": TEST_BUDGET.as_dict(),
        "instances": {h.name: {"pool": "web", "agent_url": h.agent_url, "agent_token_file": str(h.token_file)}
                      for h in hosts},
        "sources": {"local": {"enabled": True, "poll_interval_s": 0.25}, "manual": {"enabled": True}, **sources},
        "engine": {"poll_interval_s": 0.25, "retry_initial_s": 0.25, "retry_max_s": 1.0},
    }


@contextlib.asynccontextmanager
async def controller(config: dict[str, Any]) -> AsyncIterator[Assembly]:
    """The real controller (engine, sources, releasers from the config) running in this process until the end."""
    async with assemble(parse_config(config)) as assembly, running(assembly.run()):
        yield assembly


async def open_clients(server: ServerProcess, count: int) -> list[ClientConnection]:
    """`count` WebSocket clients of `server` (one token each: the server limits connects per token)."""
    base = f"{server.ws_url}{phoenix.SOCKET_PATH}?vsn={phoenix.VSN}"
    return [await connect(f"{base}&token={server.name}-{index}-{time.monotonic_ns()}", ping_interval=None,
                          open_timeout=30) for index in range(count)]


async def close_all(clients: list[ClientConnection]) -> None:
    for ws in clients:
        with contextlib.suppress(Exception):
            await ws.close()
