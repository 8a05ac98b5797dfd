"""Acceptance (issue 4, Kubernetes): a pod gets a deletionTimestamp; the controller drains it and removes its
finalizer only after verification.

Real parts: a reference server and a node agent behind each fake pod (the agent listens on the pod IP, a
loopback address of its own), WebSocket clients on loopback, the controller assembled from controller.yaml and
running in this process. Only the Kubernetes API server is a fake (tests/fakes/kubernetes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.app import Assembly
from controller.core.models import Outcome, Phase
from testbed import phoenix
from testbed.harness import Fleet
from tests.controller.platforms.kubernetes.support import (
    FINALIZER,
    PodHost,
    agent_port,
    controller_config,
    open_clients,
    start_pod_hosts,
)
from tests.controller.platforms.support import controller
from tests.fakes.kubernetes import Handle, serve
from tests.support import TEST_BUDGET, needs_root, until
from tests.support.tasks import async_test

Cluster = tuple[Handle, list[PodHost], dict[str, Any]]


@contextlib.contextmanager
def make_cluster(tmp_path: Path, faults: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Two pods, `api-a` (127.0.0.2) and `api-b` (127.0.0.3), each a real server + agent, in the fake API."""
    token_file = tmp_path / "agent.token"
    token_file.write_text("pod-agent-token\n")
    port = agent_port()
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet, serve() as fake:
        hosts = start_pod_hosts(fleet, ["api-a", "api-b"], port=port, token_file=token_file, faults=faults)
        for host in hosts:
            fake.add_pod(host.name, ip=host.ip)
        yield fake, hosts, {"port": port, "token_file": token_file, "workdir": tmp_path, "fleet": fleet}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with make_cluster(tmp_path) as made:
        yield made


@pytest.fixture
def stubborn_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """api-a's server ignores drain requests (the incident's server)."""
    with make_cluster(tmp_path, faults={"api-a": "ignore-drain"}) as made:
        yield made


async def released(running: Assembly, instance: str) -> None:
    """The release call returns before "released" is journaled: wait for the journal too."""
    await until(lambda: (d := running.engine.get(instance)) is not None and d.phase is Phase.RELEASED,
                what=f"the drain of {instance} to be journaled as released")


def finalizers(fake: Handle, name: str) -> list[str]:
    pod = fake.pod(name)
    return list(pod["metadata"].get("finalizers") or []) if pod else []


@async_test
async def test_a_deleted_pod_is_drained_with_1012_and_its_finalizer_removed_only_after_verification(
    cluster: Cluster,
) -> None:
    fake, (a, b), env = cluster
    config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"])
    async with controller(config) as running:
        clients_a, clients_b = await open_clients(a, 10), await open_clients(b, 3)
        await until(lambda: finalizers(fake, "api-a") == [FINALIZER] and finalizers(fake, "api-b") == [FINALIZER],
                    what="both ready pods to carry our finalizer")

        async with httpx.AsyncClient(timeout=10) as http:  # what `kubectl delete pod api-a --grace-period=60` sends
            delete = await http.request("DELETE", f"{fake.url}/api/v1/namespaces/default/pods/api-a",
                                        json={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 60})
        assert delete.status_code == 200
        await until(lambda: all(ws.close_code is not None for ws in clients_a), what="api-a's clients to be closed")
        assert {ws.close_code for ws in clients_a} == {phoenix.CLOSE_SERVICE_RESTART}
        await until(lambda: finalizers(fake, "api-a") == [], what="the finalizer of api-a to be removed")
        await released(running, "api-a")
        [drain] = running.engine.history(instance="api-a")
        assert (drain.phase, drain.outcome, drain.verified_by) == (Phase.RELEASED, Outcome.GRACEFUL, "kernel")
        assert drain.sockets_before == 10 and drain.handles() == (fake.pod("api-a")["metadata"]["uid"],)
        steps = {t.step: t.at for t in running.engine.journal(drain.id)}
        adding, removal = [r for r in fake.requests_where("PATCH", "/pods/api-a") if r.status == 200]
        assert (adding.body["metadata"]["finalizers"], removal.body["metadata"]["finalizers"]) == ([FINALIZER], [])
        assert steps["verified zero"] <= steps["release requested"] <= removal.at
        assert removal.at <= drain.not_after - TEST_BUDGET.margin_s

        assert all(ws.close_code is None for ws in clients_b), "the other pod's clients must stay connected"
        assert finalizers(fake, "api-b") == [FINALIZER]
        assert running.engine.history(instance="api-b") == []
        for ws in clients_b:
            await ws.close()


@async_test
async def test_a_pod_created_after_start_joins_the_fleet_is_drained_on_its_deletion_and_then_leaves(
    cluster: Cluster,
) -> None:
    """Issue 11 (discovery, item 1): a pod the controller never heard of at start is a member of the one fleet
    from its watch event on (no config edit), is drained and released when deleted, and leaves the inventory
    once its pod object is gone."""
    fake, _hosts, env = cluster
    config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"])
    async with controller(config) as running:
        inventory, fleet = running.engine.inventory, running.agents
        assert fleet is not None
        await until(lambda: {"api-a", "api-b"} <= set(inventory), what="the listed pods to join the fleet")
        known_at_start = set(inventory)
        [c] = await asyncio.to_thread(start_pod_hosts, env["fleet"], ["api-c"], port=env["port"],
                                      token_file=env["token_file"], first_ip=4)
        fake.add_pod("api-c", ip=c.ip)
        await until(lambda: "api-c" in inventory, what="the new pod to join the fleet")
        joined = (inventory["api-c"], fleet["api-c"].base_url)
        clients = await open_clients(c, 4)
        await until(lambda: finalizers(fake, "api-c") == [FINALIZER], what="the new ready pod to carry our finalizer")
        fake.delete_pod("api-c", grace_s=60)
        await released(running, "api-c")
        fake.kubelet_done("api-c")  # its containers stopped: the API server removes the pod object
        await until(lambda: "api-c" not in inventory, what="the deleted pod to leave the fleet")
        [drain] = running.engine.history(instance="api-c")
        count = running.metrics.registry.get_sample_value("drainctl_discovery_instances", {"platform": "kubernetes"})
        left = ("api-c" in fleet, fleet.get("api-c"))
    for ws in clients:
        await ws.close()

    assert "api-c" not in known_at_start
    assert joined == ("kubernetes", c.agent_url), "its pool is the source's, its agent the sidecar at the pod IP"
    assert (drain.source, drain.outcome, drain.verified_by) == ("kubernetes", Outcome.GRACEFUL, "kernel")
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    assert left == (False, None) and count == 2, "gone from the fleet and its count; api-a and api-b remain"


@async_test
async def test_hold_prestop_releases_the_notice_the_pods_prestop_hook_waits_on_and_adds_no_finalizer(
    cluster: Cluster,
) -> None:
    fake, (a, _b), env = cluster
    config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"], hold="prestop")
    uid = fake.pod("api-a")["metadata"]["uid"]
    async with controller(config) as running:
        clients = await open_clients(a, 5)
        await until(lambda: running.engine.inventory.get("api-a"), what="the pods to join the inventory")
        # what the agent's blocking preStop route does when the kubelet calls it: a notice named by the pod uid
        notice = {"id": uid, "kind": "terminate", "not_after": time.time() + 60}
        a.agent("POST", "/v1/notices", json=notice).raise_for_status()
        deleted = fake.delete_pod("api-a", grace_s=60)
        await until(lambda: a.agent("GET", f"/v1/notices/{uid}").json()["state"] == "released",
                    what="the preStop notice to be released")
        assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
        await released(running, "api-a")
        [drain] = running.engine.history(instance="api-a")
        assert drain.outcome is Outcome.GRACEFUL and drain.handles() == (uid,)
        assert fake.requests_where("PATCH") == [], "hold: prestop never touches finalizers"
        assert deleted["metadata"]["finalizers"] == []


@needs_root
@async_test
async def test_a_controller_restarted_mid_drain_resumes_it_resets_what_is_left_and_only_then_releases(
    stubborn_cluster: Cluster,
) -> None:
    fake, (a, _b), env = stubborn_cluster
    config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"])
    clients = await open_clients(a, 5)
    async with controller(config) as first:
        await until(lambda: finalizers(fake, "api-a") == [FINALIZER], what="api-a to be held")
        fake.delete_pod("api-a", grace_s=60)
        await until(lambda: (d := first.engine.get("api-a")) is not None and d.phase is Phase.VERIFYING,
                    what="the drain request (which api-a ignores)")
    assert finalizers(fake, "api-a") == [FINALIZER], "a stopped controller must not have released the pod"
    assert all(ws.close_code is None for ws in clients)

    async with controller(config) as second:  # same journal: the restarted daemon
        await until(lambda: finalizers(fake, "api-a") == [], what="the resumed drain to release api-a")
        await released(second, "api-a")
        [drain] = second.engine.history(instance="api-a")
        assert (drain.phase, drain.outcome, drain.sockets_reset) == (Phase.RELEASED, Outcome.FORCED, 5)
        steps = [t.step for t in second.engine.journal(drain.id)]
        assert steps.index("reset done") < steps.index("release requested")
    await until(lambda: all(ws.close_code is not None for ws in clients), what="the clients to see the reset")
