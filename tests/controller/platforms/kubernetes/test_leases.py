"""Leader election with a Lease (controller/platforms/kubernetes/leases.py) against the fake Kubernetes API server.

Only one replica acts at a time; a standby takes over when the holder stops cleanly (at once: the lease is
released), is killed (once the lease expired, never before), or is cut off from the API server (the holder stops
acting before anyone else can start). And two whole controllers on the same pods: only the holder drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from controller.app import Assembly, assemble
from controller.config import parse_config
from controller.core.errors import ConfigError
from controller.core.models import Phase
from controller.platforms.kubernetes.leases import LeaseElector, LeaseSettings
from testbed import phoenix
from testbed.harness import Fleet, Supervised
from testbed.harness.fleet import DRAINCTL
from testbed.harness.supervising import stop_all
from testbed.harness.waiting import wait_for
from tests.controller.platforms.kubernetes.support import (
    PodHost,
    agent_port,
    api_for,
    controller_config,
    open_clients,
    start_pod_hosts,
)
from tests.fakes.kubernetes import Handle, serve
from tests.support import TEST_BUDGET, until, wait_until
from tests.support.tasks import async_test

LEASE_S = 3.0
RENEW_S = 0.5


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        yield handle


@dataclass
class Replica:
    """An elector whose work only records when it acted."""

    elector: LeaseElector
    spans: list[list[float]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def acting(self) -> bool:
        return bool(self.spans) and len(self.spans[-1]) == 1

    async def work(self) -> None:
        self.spans.append([time.monotonic()])
        try:
            await asyncio.Event().wait()
        finally:
            self.spans[-1].append(time.monotonic())


@contextlib.asynccontextmanager
async def replicas(fake: Handle, *names: str) -> AsyncIterator[dict[str, Replica]]:
    made: dict[str, Replica] = {}
    apis = []
    try:
        for name in names:
            api = api_for(fake, f"drainctl/{name}")
            apis.append(api)
            made[name] = Replica(LeaseElector(api, LeaseSettings("default", "drainctl", name, LEASE_S, RENEW_S)))
        yield made
    finally:
        for replica in made.values():
            if replica.task is not None:
                replica.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replica.task
        for api in apis:
            api.close()


def start(replica: Replica) -> None:
    replica.task = asyncio.create_task(replica.elector.lead(replica.work))


def holder(fake: Handle) -> str | None:
    lease = fake.lease("drainctl")
    return None if lease is None else lease["spec"].get("holderIdentity")


@async_test
async def test_of_two_replicas_only_one_acts_and_the_lease_names_it(fake: Handle) -> None:
    async with replicas(fake, "one", "two") as running:
        start(running["one"])
        await until(lambda: running["one"].acting, what="the first replica to lead")
        start(running["two"])
        await until(lambda: len(fake.lease_writes) >= 8, what="several renewals")
        assert running["one"].acting and not running["two"].spans
        assert holder(fake) == "one" and running["one"].elector.leading and not running["two"].elector.leading
        assert {w["agent"] for w in fake.lease_writes} == {"drainctl/one"}, "the standby never wrote the lease"
        lease = fake.lease("drainctl")["spec"]
        assert lease["leaseDurationSeconds"] == 3 and lease["leaseTransitions"] == 0


@async_test
async def test_a_holder_that_stops_cleanly_releases_the_lease_and_the_standby_takes_over_at_once(
    fake: Handle,
) -> None:
    async with replicas(fake, "one", "two") as running:
        start(running["one"])
        await until(lambda: running["one"].acting, what="the first replica to lead")
        start(running["two"])
        await until(lambda: len(fake.lease_writes) >= 3, what="a few renewals")
        assert running["one"].task is not None
        running["one"].task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running["one"].task
        released = fake.lease_writes[-1]
        assert (released["holder"], released["duration"]) == (None, 1)
        await until(lambda: running["two"].acting, what="the standby to lead")
        stopped, started = running["one"].spans[0][1], running["two"].spans[0][0]
        assert stopped < started < stopped + LEASE_S, "a released lease need not expire first"
        assert fake.lease("drainctl")["spec"]["leaseTransitions"] == 1


@async_test
async def test_a_holder_cut_off_from_the_api_server_stops_acting_before_the_standby_starts(fake: Handle) -> None:
    async with replicas(fake, "one", "two") as running:
        start(running["one"])
        await until(lambda: running["one"].acting, what="the first replica to lead")
        start(running["two"])
        await until(lambda: len(fake.lease_writes) >= 3, what="a few renewals")
        fake.partition("drainctl/one")
        await until(lambda: running["two"].acting, within_s=4 * LEASE_S + 10, what="the standby to take over")
        [(_, one_stopped)] = running["one"].spans
        assert one_stopped < running["two"].spans[0][0], "the two replicas must never act at the same time"
        assert not running["one"].acting


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_a_killed_holder_is_replaced_once_its_lease_expired_and_never_before(fake: Handle, tmp_path: Path) -> None:
    holders: list[Supervised] = []

    def spawn(identity: str) -> Supervised:
        holder = "tests.controller.platforms.kubernetes.lease_holder"
        argv = [sys.executable, "-m", holder, fake.url, identity, str(LEASE_S), str(RENEW_S)]
        process = Supervised(identity, argv, log_path=tmp_path / f"{identity}.log", cwd=Path.cwd())
        holders.append(process)
        return process

    try:
        one = spawn("one")
        one.wait_event("leading", 60)
        two = spawn("two")
        wait_until(lambda: len([w for w in fake.lease_writes if w["agent"] == "drainctl/one"]) >= 6,
                   what="the holder to renew its lease (two stands by meanwhile)")
        one.signal(signal.SIGKILL)
        one.wait_exit(10)
        two.wait_event("leading", 4 * LEASE_S + 30)

        writes = fake.lease_writes
        last_renewal = max(w["at"] for w in writes if w["holder"] == "one")
        takeover = min(w for w in writes if w["holder"] == "two")
        assert takeover["at"] - last_renewal >= LEASE_S - 0.05, "the standby must wait for the lease to expire"
        assert takeover["transitions"] == 1 and _at(takeover["acquireTime"]) >= last_renewal
        assert all(w["holder"] == "one" for w in writes if w["at"] <= last_renewal)
    finally:
        stop_all(holders)


def test_a_renewal_period_too_long_for_the_lease_is_refused_in_one_line(tmp_path: Path) -> None:
    config = {"journal": str(tmp_path / "j.sqlite"),
              "leader": {"namespace": "api", "lease_duration_s": 15, "renew_s": 6}}
    with pytest.raises(ConfigError, match=r"leader: renew_s \(6\) must be at most a third of lease_duration_s \(15\)"):
        parse_config(config)


# --- two whole controllers on the same pods ---------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Handle, list[PodHost], dict[str, Any]]]:
    token_file = tmp_path / "agent.token"
    token_file.write_text("pod-agent-token\n")
    port = agent_port()
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet, serve() as fake:
        hosts = start_pod_hosts(fleet, ["api-a", "api-b"], port=port, token_file=token_file)
        for host in hosts:
            fake.add_pod(host.name, ip=host.ip)
        yield fake, hosts, {"port": port, "token_file": token_file, "workdir": tmp_path}


@contextlib.asynccontextmanager
async def controllers(fake: Handle, env: dict[str, Any], *names: str) -> AsyncIterator[dict[str, Assembly]]:
    async with contextlib.AsyncExitStack() as stack:
        made: dict[str, Assembly] = {}
        for name in names:
            leader = {"namespace": "default", "identity": name, "lease_duration_s": LEASE_S, "renew_s": RENEW_S}
            config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"],
                                       name=name, leader=leader)
            made[name] = await stack.enter_async_context(assemble(parse_config(config)))
        tasks = [asyncio.create_task(assembly.run()) for assembly in made.values()]
        try:
            yield made
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def patched_by(fake: Handle, pod: str, *, since: float = 0.0) -> set[str]:
    """Who changed the pod (successful PATCHes only)."""
    return {r.user_agent for r in fake.requests_where("PATCH", f"/pods/{pod}") if r.status == 200 and r.at >= since}


@async_test
async def test_of_two_controllers_only_the_lease_holder_drains_and_the_other_takes_over_when_it_is_cut_off(
    cluster: tuple[Handle, list[PodHost], dict[str, Any]],
) -> None:
    fake, (a, b), env = cluster
    async with controllers(fake, env, "one") as first:
        await until(lambda: first["one"].leading and holder(fake) == "one", what="controller one to lead")
        async with controllers(fake, env, "two") as second:
            one, two = first["one"], second["two"]
            clients_a = await open_clients(a, 5)
            fake.delete_pod("api-a", grace_s=60)
            await until(lambda: all(ws.close_code for ws in clients_a), what="api-a to be drained")
            await until(lambda: one.engine.get("api-a") and one.engine.get("api-a").phase is Phase.RELEASED,
                        what="controller one to release api-a")
            assert two.engine.history() == [] and not two.leading, "the standby must not act"
            assert patched_by(fake, "api-a") == {"drainctl/one"}
            assert {ws.close_code for ws in clients_a} == {phoenix.CLOSE_SERVICE_RESTART}

            cut_off_at = time.time()
            fake.partition("drainctl/one")  # controller one is cut off (as good as dead to the cluster)
            await until(lambda: two.leading, within_s=4 * LEASE_S + 10, what="controller two to take over")
            clients_b = await open_clients(b, 5)
            fake.delete_pod("api-b", grace_s=60)
            await until(lambda: two.engine.get("api-b") and two.engine.get("api-b").phase is Phase.RELEASED,
                        what="controller two to drain and release api-b")
            assert {ws.close_code for ws in clients_b} == {phoenix.CLOSE_SERVICE_RESTART}
            assert one.engine.get("api-b") is None and not one.leading
            assert patched_by(fake, "api-b", since=cut_off_at) == {"drainctl/two"}
            assert fake.pod("api-b")["metadata"]["finalizers"] == []


def test_of_two_drainctl_run_replicas_only_the_holder_acts_and_the_other_takes_over_when_it_is_killed(
    cluster: tuple[Handle, list[PodHost], dict[str, Any]], tmp_path: Path,
) -> None:
    fake, (a, b), env = cluster
    api_token = tmp_path / "api.token"
    api_token.write_text("controller-api-token\n")
    with Fleet(TEST_BUDGET, workdir=tmp_path / "controllers") as fleet:

        def replica(name: str) -> tuple[Supervised, str]:
            leader = {"namespace": "default", "identity": name, "lease_duration_s": LEASE_S, "renew_s": RENEW_S}
            config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"],
                                       name=name, leader=leader)
            config["api"] = {"listen": "127.0.0.1:0", "token_file": str(api_token)}
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            process = fleet.start_command(f"controller-{name}", [*DRAINCTL, "run", "--config", str(path)])
            return process, f"http://{process.wait_event('ready', 60)['api']}"

        one, _one_api = replica("one")
        wait_for(lambda: holder(fake) == "one", timeout_s=60, what="replica one to hold the lease")
        _two, two_api = replica("two")
        headers = {"Authorization": "Bearer controller-api-token"}
        # The standby answers reads from the journal and refuses writes: they belong to the leader.
        assert httpx.get(f"{two_api}/v1/instances", headers=headers, timeout=10).status_code == 200
        write = httpx.post(f"{two_api}/v1/instances/api-a/reset", headers=headers, timeout=10)
        assert write.status_code == 503 and "not the leader" in write.json()["error"]
        assert httpx.get(f"{two_api}/readyz", timeout=10).status_code == 503

        async def drain(host: PodHost) -> set[int | None]:
            clients = await open_clients(host, 5)
            fake.delete_pod(host.name, grace_s=60)
            await until(lambda: all(ws.close_code for ws in clients), within_s=60, what=f"{host.name} to drain")
            return {ws.close_code for ws in clients}

        assert asyncio.run(drain(a)) == {phoenix.CLOSE_SERVICE_RESTART}
        wait_for(lambda: fake.pod("api-a")["metadata"]["finalizers"] == [], timeout_s=60, what="api-a released")
        assert patched_by(fake, "api-a") == {"drainctl/one"}

        one.signal(signal.SIGKILL)
        one.wait_exit(10)
        wait_for(lambda: holder(fake) == "two", timeout_s=4 * LEASE_S + 30, what="replica two to take over")
        writes = fake.lease_writes
        last_renewal = max(w["at"] for w in writes if w["holder"] == "one")
        takeover = min((w for w in writes if w["holder"] == "two"), key=lambda w: w["at"])
        assert takeover["at"] - last_renewal >= LEASE_S - 0.05, "the standby must wait for the lease to expire"

        killed_at = time.time()
        assert asyncio.run(drain(b)) == {phoenix.CLOSE_SERVICE_RESTART}
        wait_for(lambda: fake.pod("api-b")["metadata"]["finalizers"] == [], timeout_s=60, what="api-b released")
        assert patched_by(fake, "api-b", since=killed_at) == {"drainctl/two"}

        def shown() -> tuple[str, str, str]:
            answer = httpx.get(f"{two_api}/v1/instances/api-b", headers=headers, timeout=10).json()
            return answer["phase"], answer["source"], answer["pool"]

        wait_for(lambda: shown() == ("released", "kubernetes", "kubernetes"), timeout_s=30,
                 what="replica two's API to show api-b released")
