"""Real processes for the agent's tests: the agent itself (`drainctl agent`), a stand-in app, client sockets.

Every process a test starts is stopped at teardown (SIGCONT first, in case the test stopped it), every socket
closed; nothing waits with `sleep`: `wait_until` (tests/support) polls a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from controller.hosts.client import AgentClient
from tests.support import AGENT_TOKEN
from tests.support import APP_TOKEN as APP_TOKEN
from tests.support import needs_root as needs_root  # test_fallback*.py still import these two from here
from tests.support import wait_until as wait_until

TOKEN = AGENT_TOKEN
DRAINCTL = Path(sys.executable).parent / "drainctl"
STAND_IN = Path(__file__).with_name("standin_app.py")

T = TypeVar("T")


@dataclass
class Spawned:
    process: subprocess.Popen[str]
    ready: dict[str, Any]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@dataclass
class Spawner:
    tmp_path: Path
    spawned: list[Spawned] = field(default_factory=list)

    def __call__(self, name: str, args: list[str], *, ready_within_s: float = 60.0) -> Spawned:
        stderr_path = self.tmp_path / f"{name}.stderr"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
        spawned = Spawned(process, {}, stderr_path)
        self.spawned.append(spawned)
        spawned.ready = _first_json_line(spawned, ready_within_s)
        return spawned

    def stop_all(self) -> None:
        for spawned in reversed(self.spawned):
            spawned.stop()
            if spawned.process.stdout is not None:
                spawned.process.stdout.close()


def _first_json_line(spawned: Spawned, within_s: float) -> dict[str, Any]:
    stdout = spawned.process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        if not selector.select(timeout=within_s):
            pytest.fail(f"no ready line within {within_s:g} s; stderr:\n{spawned.stderr()}")
    line = stdout.readline()
    if not line:
        pytest.fail(f"exited ({spawned.process.wait()}) before its ready line; stderr:\n{spawned.stderr()}")
    ready: dict[str, Any] = json.loads(line)
    return ready


@pytest.fixture
def spawner(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    try:
        yield spawner
    finally:
        spawner.stop_all()


@dataclass
class App:
    """The stand-in app: a TCP echo service on `service_port` and the drain hook at `admin_url`."""

    spawned: Spawned

    @property
    def service_port(self) -> int:
        return int(self.spawned.ready["service_port"])

    @property
    def admin_url(self) -> str:
        return str(self.spawned.ready["admin_url"])

    def drains(self) -> list[dict[str, Any]]:
        """The drain requests the app received (those with the right token)."""
        answer: list[dict[str, Any]] = httpx.get(f"{self.admin_url}/test/drains", timeout=10).json()
        return answer


@dataclass
class Agent:
    spawned: Spawned
    base_url: str

    def call(self, operation: Callable[[AgentClient], Awaitable[T]], *, timeout_s: float = 10.0) -> T:
        """Run one client operation against this agent, with the real client."""

        async def run() -> T:
            client = AgentClient(self.base_url, TOKEN, timeout_s=timeout_s)
            try:
                return await operation(client)
            finally:
                await client.aclose()

        return asyncio.run(run())

    def connections(self) -> int:
        return self.call(lambda client: client.connections())


def token_files(tmp_path: Path) -> tuple[Path, Path]:
    agent_token, app_token = tmp_path / "agent.token", tmp_path / "app.token"
    agent_token.write_text(TOKEN + "\n")
    app_token.write_text(APP_TOKEN + "\n")
    return agent_token, app_token


def agent_config(tmp_path: Path, *, service_port: int, drain_url: str, **overrides: Any) -> dict[str, Any]:
    agent_token, app_token = token_files(tmp_path)
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "token_file": str(agent_token),
        "service_port": service_port,
        "app": {"drain_url": drain_url, "token_file": str(app_token), "timeout_s": 1.0},
        "fallback": {"enabled": False},
        "instance": "A",
    }
    config.update(overrides)
    return config


@pytest.fixture
def start_app(spawner: Spawner, tmp_path: Path) -> Callable[..., App]:
    def start(on_drain: str = "ignore") -> App:
        _, app_token = token_files(tmp_path)
        args = [sys.executable, str(STAND_IN), "--token-file", str(app_token), "--on-drain", on_drain]
        return App(spawner("app", args))

    return start


@pytest.fixture
def start_agent(spawner: Spawner, tmp_path: Path) -> Callable[..., Agent]:
    def start(app: App, *, drain_url: str | None = None, **overrides: Any) -> Agent:
        config = agent_config(
            tmp_path, service_port=app.service_port, drain_url=drain_url or f"{app.admin_url}/admin/drain",
            **overrides,
        )
        path = tmp_path / f"agent-{len(spawner.spawned)}.yaml"
        path.write_text(yaml.safe_dump(config))
        spawned = spawner("agent", [str(DRAINCTL), "agent", "--config", str(path)])
        assert spawned.ready["event"] == "ready" and spawned.ready["pid"] == spawned.pid
        return Agent(spawned, f"http://{spawned.ready['listen']}")

    return start


@pytest.fixture
def connect() -> Iterator[Callable[[int, int], list[socket.socket]]]:
    """Open N client sockets to a port on loopback; all closed at teardown."""
    opened: list[socket.socket] = []

    def open_sockets(port: int, count: int) -> list[socket.socket]:
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        opened.extend(sockets)
        return sockets

    try:
        yield open_sockets
    finally:
        for sock in opened:
            sock.close()


def was_reset(sock: socket.socket) -> bool:
    """True when the peer aborted this socket with a TCP RST (ECONNRESET on read)."""
    sock.settimeout(10)
    try:
        sock.recv(1)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def echoes(sock: socket.socket) -> bool:
    """True when the socket still carries data both ways (the stand-in app echoes)."""
    sock.settimeout(10)
    sock.sendall(b"ping")
    received = b""
    while len(received) < 4:
        chunk = sock.recv(4 - len(received))
        if not chunk:
            return False
        received += chunk
    return received == b"ping"
