"""Acceptance (issue 11, part 1): the controller finds new instances by itself and protects them.

- GCP: a MIG (the Compute fake) creates two instances after the controller started, each a real reference
  server with a real agent; the MIG deleting one of them is drained, verified and released, with no config edit;
  once the MIG no longer lists it, it leaves the inventory. The MIG named in config, or found by the label its
  instance template gives its instances (`group_labels`), beside a MIG of another label that is left alone.
- Azure: the same with a scale set (the Resource Manager fake, the managed identity's token from the IMDS fake
  through azure-identity) and a Scheduled Event seen by the new VM's agent, approved once drained.
- An event for an instance that discovery has not listed yet (its next round is minutes away) is held, a
  round is run at once, and the instance is drained.

Each agent listens on its own loopback address (127.0.0.x) and the fleet's one agent port, as VMs do on theirs.
Only the cloud APIs are fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.models import Outcome, Phase
from testbed import phoenix
from testbed.harness import Fleet
from tests.controller.platforms.support import Host, close_all, controller, controller_config, open_clients, start_host
from tests.fakes.azure_arm import FakeArm
from tests.fakes.azure_imds import FakeImds
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support import TEST_BUDGET, until
from tests.support.tasks import async_test

pytestmark = pytest.mark.e2e

SUB, GROUP = "0000-sub", "drainctl-centralus"


def shared_port(addresses: list[str]) -> int:
    """A TCP port free on every one of `addresses` (the fleet's one agent port)."""
    for _ in range(100):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind((addresses[0], 0))
            port = int(first.getsockname()[1])
            try:
                for address in addresses[1:]:
                    stack.enter_context(socket.socket()).bind((address, port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no port free on all of {addresses}")


def host_at(fleet: Fleet, name: str, address: str, port: int, **options: Any) -> Host:
    return start_host(fleet, name, extra={"listen": f"{address}:{port}"}, **options)


@pytest.fixture
def testbed(tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet:
        yield fleet


def gcp_config(
    tmp_path: Path, fake: Handle[FakeCompute], port: int, interval_s: float, *, labelled: bool = False
) -> dict[str, Any]:
    """The GCP source and discovery against the fake; the MIGs named, or (`labelled`) selected by label."""
    config = controller_config(tmp_path, [])
    discovery = {"enabled": True, "interval_s": interval_s, "agent_port": port,
                 "agent_token_file": str(tmp_path / "fleet" / "agent.token")}
    selection: dict[str, Any] = ({"group_labels": {"role": "api"}, "group_refresh_s": interval_s} if labelled
                                 else {"groups": [{"region": "us-central1", "name": "api"}]})
    config["sources"] = {"local": {"enabled": False}, "manual": {"enabled": True},
                         "gcp": {"enabled": True, "project": "proj", **selection, "api_url": fake.url,
                                 "auth": "anonymous", "poll_interval_s": 0.5, "window_s": 60, "retry_max_s": 2,
                                 "discovery": discovery}}
    return config


@pytest.mark.parametrize("labelled", [False, True], ids=["named-mig", "labelled-mig"])
@async_test
async def test_two_new_mig_instances_are_found_and_one_being_deleted_is_drained_and_released(
    testbed: Fleet, tmp_path: Path, labelled: bool
) -> None:
    addresses = ["127.0.0.11", "127.0.0.12"]
    port = shared_port(addresses)
    first = host_at(testbed, "api-x1", addresses[0], port)  # writes the fleet's agent token file
    with serve(FakeCompute(), name="fake-compute") as fake:
        fake.add_group("us-central1", "api", [])
        fake.set_manager("us-central1", "api", [fake.add_template("api-tpl", {"role": "api"})])
        fake.set_manager("us-east1", "worker", [fake.add_template("worker-tpl", {"role": "worker"})])
        config = gcp_config(tmp_path, fake, port, interval_s=1.0, labelled=labelled)
        async with controller(config) as running:
            engine = running.engine
            # Started in a thread: the controller runs in this loop meanwhile.
            second = await asyncio.to_thread(host_at, testbed, "api-x2", addresses[1], port)
            for host, address in ((first, addresses[0]), (second, addresses[1])):
                fake.add_instance("us-central1", "api", host.name, network_ip=address)
            await until(lambda: {"api-x1", "api-x2"} <= set(engine.inventory), what="both instances discovered")
            clients = await open_clients(first.server, 5)
            deadline = fake.mark("api-x1", "DELETING", status="PENDING_STOP", shutdown_s=60)
            await until(lambda: (d := engine.get("api-x1")) is not None and d.phase is Phase.RELEASED,
                        what="api-x1's drain to be released")
            registry = running.metrics.registry
            up_while_known = registry.get_sample_value("drainctl_agent_up", {"host": "api-x1"})
            fake.remove("api-x1")
            await until(lambda: "api-x1" not in engine.inventory, what="api-x1 to leave the inventory")
            up_once_gone = registry.get_sample_value("drainctl_agent_up", {"host": "api-x1"})
            [drain] = engine.history(instance="api-x1")
            other = engine.get("api-x2")
            inventory = dict(engine.inventory)
        await close_all(clients)

    assert (drain.source, drain.outcome, drain.verified_by) == ("gcp", Outcome.GRACEFUL, "kernel")
    assert drain.not_after == pytest.approx(deadline, abs=0.01)
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    assert [n["released_by"] for n in first.notices()] == ["controller"], "the guest's shutdown hold may return"
    assert other is None and inventory == {"api-x2": "api"}, "the other new instance is known and untouched"
    assert (up_while_known, up_once_gone) == (1.0, None), "a discovered agent reports drainctl_agent_up"


@async_test
async def test_an_event_for_an_instance_not_listed_yet_is_held_until_a_round_lists_it(
    testbed: Fleet, tmp_path: Path
) -> None:
    port = shared_port(["127.0.0.13"])
    host = host_at(testbed, "api-x3", "127.0.0.13", port)
    with serve(FakeCompute(), name="fake-compute") as fake:
        fake.add_group("us-central1", "api", [])
        async with controller(gcp_config(tmp_path, fake, port, interval_s=600.0)) as running:
            engine = running.engine
            await until(lambda: fake.lists(), what="the first rounds")
            # Created and deleted before discovery's next round (10 minutes away): the MIG poller sees it first.
            fake.add_instance("us-central1", "api", "api-x3", network_ip="127.0.0.13")
            fake.mark("api-x3", "DELETING", status="PENDING_STOP", shutdown_s=60)
            await until(lambda: (d := engine.get("api-x3")) is not None and d.phase is Phase.RELEASED,
                        what="api-x3's drain to be released")
            [drain] = engine.history(instance="api-x3")
            refused = running.metrics.registry.get_sample_value("drainctl_events_total",
                                                                {"source": "gcp", "disposition": "started"})

    assert (drain.source, drain.outcome, drain.verified_by) == ("gcp", Outcome.GRACEFUL, "kernel")
    assert refused == 1, "the held event was taken once, as a new drain"
    assert [n["released_by"] for n in host.notices()] == ["controller"]


@async_test
async def test_a_new_scale_set_vm_with_a_scheduled_event_is_drained_and_the_event_approved(
    testbed: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addresses = ["127.0.0.21", "127.0.0.22"]
    port = shared_port(addresses)
    with serve(FakeImds(), name="fake-imds") as imds, \
            serve(FakeArm(page_size=1, require_token=FakeImds().identity_token), name="fake-arm") as arm:
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url)  # azure-identity's IMDS address
        arm.add_scale_set(SUB, GROUP, "api", {})
        hosts = [host_at(testbed, f"api_{i}", address, port, platform={"kind": "azure", "imds_url": imds.url,
                                                                       "resource_name": f"api_{i}"})
                 for i, address in enumerate(addresses, start=1)]
        config = controller_config(tmp_path, [])
        config["sources"]["azure"] = {
            "enabled": True, "scale_sets": [{"subscription": SUB, "resource_group": GROUP, "name": "api"}],
            "arm_url": arm.url, "auth": "managed_identity", "interval_s": 1.0, "agent_port": port,
            "agent_token_file": str(hosts[0].token_file), "retry_max_s": 2,
        }
        async with controller(config) as running:
            engine = running.engine
            for i, address in enumerate(addresses, start=1):
                arm.add_vm(SUB, GROUP, "api", str(i), address)
            await until(lambda: {"api_1", "api_2"} <= set(engine.inventory), what="both VMs discovered")
            clients = await open_clients(hosts[0].server, 5)
            event_id = imds.schedule("Terminate", ["api_1"], not_before_s=60)
            await until(lambda: (d := engine.get("api_1")) is not None and d.phase is Phase.RELEASED,
                        what="api_1's drain to be released")
            await until(lambda: imds.approved(event_id), what="the Scheduled Event to be approved")
            arm.remove_vm(SUB, GROUP, "api", "1")
            await until(lambda: "api_1" not in engine.inventory, what="api_1 to leave the inventory")
            [drain] = engine.history(instance="api_1")
            other = engine.get("api_2")
        token_requests = imds.token_requests
        await close_all(clients)

    assert (drain.source, drain.outcome, drain.verified_by) == ("local", Outcome.GRACEFUL, "kernel")
    assert drain.handles() == (event_id,)
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    assert other is None, "the other VM was not drained"
    assert token_requests, "the ARM token came from the managed identity (IMDS) through azure-identity"
