"""issue 15 on Kubernetes, through the controller assembled from controller.yaml (`rotation.enabled`,
`sources.kubernetes.endpoints.service`): the drain's first step ends on the pod's endpoint in the Service's
EndpointSlices.

Real parts: a reference server with WebSocket clients and its not-ready hook behind each fake pod, the node
agent at the pod IP, the controller in this process. Only the API server is a fake; the test plays the kubelet,
probing each server's real `/readyz` (every 0.1 s, not Ready after 2 failures) and writing the pod's Ready
condition, from which the fake derives the EndpointSlices.

- An operator's drain: the endpoint turns not ready only once the kubelet saw `/readyz` fail, and only then is
  the first socket closed ("out of rotation (observed)", well inside the budget's 15 s timer).
- A pod deletion: the endpoint is terminating at once, so the first look ends the step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.core.models import Phase, Transition
from testbed.harness import Fleet
from tests.controller.platforms.kubernetes.support import (
    PodHost,
    agent_port,
    controller_config,
    open_clients,
    start_pod_hosts,
)
from tests.controller.platforms.support import controller
from tests.fakes.kubernetes import Handle, serve
from tests.support import TEST_BUDGET, until
from tests.support.tasks import async_test, running

Cluster = tuple[Handle, list[PodHost], dict[str, Any]]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    token_file = tmp_path / "agent.token"
    token_file.write_text("pod-agent-token\n")
    port = agent_port()
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet, serve() as fake:
        hosts = start_pod_hosts(fleet, ["api-a", "api-b"], port=port, token_file=token_file, not_ready=True)
        for host in hosts:
            fake.add_pod(host.name, ip=host.ip)
        fake.add_service("api", {"app": "api"})
        config = controller_config(tmp_path, fake, port=port, token_file=token_file)
        config["sources"]["kubernetes"]["endpoints"] = {"service": "api", "interval_s": 0.1}
        config["rotation"] = {"enabled": True, "poll_s": 0.05}
        yield fake, hosts, config


@contextlib.asynccontextmanager
async def kubelet(fake: Handle, hosts: list[PodHost]) -> AsyncIterator[dict[str, float]]:
    """Readiness probes of every pod's server; yields pod -> unix time it was marked not Ready."""
    marked: dict[str, float] = {}

    async def probe() -> None:
        fails = dict.fromkeys((h.name for h in hosts), 0)
        async with httpx.AsyncClient(timeout=0.5, trust_env=False) as http:
            while True:
                for host in hosts:
                    ready = False
                    with contextlib.suppress(httpx.HTTPError):
                        ready = (await http.get(f"{host.server.http_url}/readyz")).status_code == 200
                    fails[host.name] = 0 if ready else fails[host.name] + 1
                    if fails[host.name] == 2:
                        fake.set_ready(host.name, False)
                        marked[host.name] = time.time()
                await asyncio.sleep(0.1)

    async with running(probe()):
        yield marked


def _rotated(lines: list[Transition]) -> Transition:
    [line] = [t for t in lines if t.step.startswith("out of rotation")]
    return line


@async_test
async def test_an_operators_drain_closes_the_first_socket_only_after_the_endpoint_is_not_ready(
    cluster: Cluster,
) -> None:
    fake, (a, b), config = cluster
    async with controller(config) as assembly, kubelet(fake, [a, b]) as marked:
        clients = await open_clients(a, 5)
        assembly.engine.drain("api-a")
        await until(lambda: all(ws.close_code is not None for ws in clients), what="api-a's clients to close")
        await until(lambda: (d := assembly.engine.get("api-a")) is not None and d.phase is not Phase.DRAINING,
                    what="the drain to be verified")
        [drain] = assembly.engine.history(instance="api-a")
        rotated = _rotated(assembly.engine.journal(drain.id))

    assert rotated.step == "out of rotation (observed)", rotated
    assert rotated.detail is not None and rotated.detail.startswith("kubernetes service default/api stopped routing")
    assert marked["api-a"] <= rotated.at, "the step ended only after the endpoint turned not ready"
    assert "api-b" not in marked, "the other pod stayed in rotation"
    for ws in clients:
        await ws.close()


@async_test
async def test_a_pod_deletion_marks_its_endpoint_terminating_so_the_drain_does_not_wait(cluster: Cluster) -> None:
    fake, (a, _b), config = cluster
    async with controller(config) as assembly:
        clients = await open_clients(a, 5)
        fake.delete_pod("api-a", grace_s=60)
        await until(lambda: all(ws.close_code is not None for ws in clients), what="api-a's clients to close")
        [drain] = assembly.engine.history(instance="api-a")
        rotated = _rotated(assembly.engine.journal(drain.id))
        pod = fake.pod("api-a")

    assert rotated.step == "out of rotation (observed)", rotated
    assert pod is not None and pod["status"]["conditions"] == [{"type": "Ready", "status": "True"}], (
        "no kubelet here: the endpoint was out because the pod is terminating, not because a probe failed")
    for ws in clients:
        await ws.close()
