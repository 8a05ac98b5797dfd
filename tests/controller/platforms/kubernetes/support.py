"""Helpers for the Kubernetes tests: the real source against the fake API server, and waiting without sleeps."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from websockets.asyncio.client import ClientConnection, connect

from controller.core.models import LifecycleEvent
from controller.core.source_metrics import SourceMetrics
from controller.platforms.kubernetes.api import KubernetesApi
from controller.platforms.kubernetes.api import connect as kubernetes_connect
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.watching import KubernetesSource
from testbed import phoenix
from testbed.harness import Fleet, ServerProcess
from testbed.harness.fleet import DRAINCTL
from testbed.harness.ports import free_port
from tests.fakes.kubernetes import Handle
from tests.support import TEST_BUDGET, running

FINALIZER = "drainctl.io/drain"


def api_for(fake: Handle, agent: str = "drainctl/test") -> KubernetesApi:
    return kubernetes_connect(fake.url, user_agent=agent, request_timeout_s=5.0)


@dataclass
class Watching:
    """A running `KubernetesSource`: what it emitted, the pods it sees, its metrics."""

    source: KubernetesSource
    pods: PodDirectory
    metrics: SourceMetrics
    events: list[LifecycleEvent] = field(default_factory=list)

    async def collect(self) -> None:
        async for event in self.source.watch():
            self.events.append(event)

    def instances(self) -> list[str]:
        return [event.instance for event in self.events]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"source": "kubernetes", **labels})
        return value or 0.0


@contextlib.asynccontextmanager
async def watching(fake: Handle, pods: PodDirectory | None = None, **options: Any) -> AsyncIterator[Watching]:
    """The source watching the fake's `default` namespace (`app=api`) with quick retries, until the block ends;
    it writes `pods` (a fresh directory when None)."""
    api = api_for(fake)
    pods = pods if pods is not None else PodDirectory()
    metrics = SourceMetrics()
    settings: dict[str, Any] = {"namespace": "default", "label_selector": "app=api", "finalizer": FINALIZER,
                                "retry_initial_s": 0.05, "retry_max_s": 0.5, **options}
    source = KubernetesSource(api, pods, metrics=metrics.of("kubernetes"), **settings)
    seen = Watching(source, pods, metrics)
    try:
        async with running(seen.collect()):
            yield seen
    finally:
        api.close()


# --- pods backed by real testbed servers and real node agents ------------------------------------------------


@dataclass
class PodHost:
    """What stands behind one fake pod: a reference server and the node agent beside it, at the pod's IP."""

    name: str
    ip: str
    server: ServerProcess
    agent_url: str
    token: str

    def agent(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, self.agent_url + path, headers=headers, timeout=10, trust_env=False, **kwargs)


def agent_port() -> int:
    """A port free on the pod IPs we use (127.0.0.2-9): every agent listens on it, each on its own IP."""
    for _ in range(20):
        port = free_port("127.0.0.2").port
        if all(_free(f"127.0.0.{n}", port) for n in range(3, 10)):
            return port
    raise AssertionError("no port free on all of 127.0.0.2-9")


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def start_pod_hosts(fleet: Fleet, names: list[str], *, port: int, token_file: Path,
                    faults: dict[str, str] | None = None, not_ready: bool = False,
                    first_ip: int = 2) -> list[PodHost]:
    """A server and an agent (listening on 127.0.0.N:port from N = `first_ip`, fallback off: only a controller
    acts) per name; `faults` gives a server a testbed fault (e.g. `ignore-drain`); `not_ready`: the agent knows the
    server's not-ready hook (the out-of-rotation step)."""
    hosts = []
    for index, name in enumerate(names):
        ip = f"127.0.0.{index + first_ip}"
        server = fleet.start_server(name, fault=(faults or {}).get(name))
        app_token_file = fleet.workdir / f"{name}-app.token"
        app_token_file.write_text(server.admin_token)
        config: dict[str, Any] = {
            "listen": f"{ip}:{port}", "token_file": str(token_file), "service_port": server.listen.port,
            "service_address": server.listen.host, "instance": name, "fallback": {"enabled": False},
            "app": {"drain_url": f"{server.admin_url}/admin/drain", "token_file": str(app_token_file),
                    "timeout_s": 1.0},
        }
        if not_ready:
            config["app"]["not_ready_url"] = f"{server.admin_url}/admin/not-ready"
        path = fleet.workdir / f"agent-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        process = fleet.start_command(f"agent-{name}", [*DRAINCTL, "agent", "--config", str(path)])
        process.wait_event("ready", 60.0)
        hosts.append(PodHost(name, ip, server, f"http://{ip}:{port}", token_file.read_text().strip()))
    return hosts


def controller_config(
    workdir: Path, fake: Handle, *, port: int, token_file: Path, name: str = "controller", hold: str = "finalizer",
    leader: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """controller.yaml (as a mapping) for the Kubernetes source against the fake, with quick engine passes."""
    config: dict[str, Any] = {
        "journal": str(workdir / f"{name}.sqlite"),
        "budget": TEST_BUDGET.as_dict(),
        "sources": {
            "local": {"enabled": False},
            "manual": {"enabled": True},
            "kubernetes": {"enabled": True, "api_url": fake.url, "namespace": "default", "label_selector": "app=api",
                           "agent_port": port, "agent_token_file": str(token_file), "hold": hold,
                           "retry_max_s": 0.5},
        },
        "engine": {"poll_interval_s": 0.25, "retry_initial_s": 0.25, "retry_max_s": 1.0},
    }
    if leader is not None:
        config["leader"] = leader
    return config


async def open_clients(host: PodHost, count: int) -> list[ClientConnection]:
    """`count` WebSocket clients of the host's server (one token each: the server limits connects per token)."""
    base = f"{host.server.ws_url}{phoenix.SOCKET_PATH}?vsn={phoenix.VSN}"
    return [await connect(f"{base}&token={host.name}-{index}", ping_interval=None, open_timeout=30)
            for index in range(count)]
