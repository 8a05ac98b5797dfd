"""The staging stack, deployed as rendered, on one machine (issue 12, item 7; docs/box.md).

Every VM boots from the boot input the program renders (unmodified; only its /etc/hosts and CA bundle are the
box's): the drainctl it runs is installed from the stack's own artifact, verified by its sha256, and the
secrets it reads are fetched with its own identity after a first refused attempt. Then each cloud's agents and
both its controllers run, and exactly one controller per cloud leads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from tests.box.conftest import box_root, need_box
from tests.box.stack import StagingStack, render
from tests.box.world import BOOT_TIMEOUT_S, WHEELHOUSE, BoxVm, World
from tests.support import wait_until
from tests.support.postgres import need_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.root]

API_PORT = 9300
"""The controllers' API port (stack config `drainctl:controller.api_port`, default infra/config.py)."""


@pytest.fixture(scope="module")
def stack() -> StagingStack:
    return render()


@pytest.fixture
def world(stack: StagingStack) -> Iterator[World]:
    need_box()
    need_postgres()
    root = box_root()
    with World.start(stack, root) as running:
        yield running
    if not os.environ.get("DRAINCTL_BOX_KEEP"):
        shutil.rmtree(root, ignore_errors=True)


def _readyz(address: str) -> str:
    """A controller's /readyz status code as the box sees it ("000": nothing answers)."""
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}",
                           f"http://{address}:{API_PORT}/readyz"],
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout


def _boot_failure(box_vm: BoxVm) -> str:
    boot = box_vm.boot
    assert boot is not None
    tail = "\n".join((boot.stdout + boot.stderr).splitlines()[-8:])
    units = "".join(f"\n--- {name}:\n" + "\n".join(box_vm.init.log(name).read_text().splitlines()[-8:])
                    for name in box_vm.init.services if box_vm.init.log(name).exists())
    return f"{box_vm.name}: boot exit {boot.returncode}:\n{tail}{units}"


def test_every_vm_of_staging_boots_from_its_rendered_script_and_one_controller_leads_per_cloud(
    world: World,
) -> None:
    vms = world.boot_all()
    for box_vm in vms:
        assert box_vm.booted.wait(BOOT_TIMEOUT_S), f"{box_vm.name} still booting"
        assert box_vm.boot is not None and box_vm.boot.returncode == 0, _boot_failure(box_vm)

    shipped = WHEELHOUSE.with_name("wheelhouse.tar.gz.sha256").read_text().split()[0]
    for box_vm in vms:
        store = world.gateway.storage if box_vm.cloud == "gcp" else world.gateway.blob
        assert store.downloads(box_vm.vm.ip), f"{box_vm.name} fetched the wheelhouse from the stack's own store"
        installed = box_vm.vm.path("/opt/drainctl/.wheelhouse.sha256").read_text().strip()
        assert installed == shipped, f"{box_vm.name} installed the wheelhouse `make dist` built, hash verified"
    for box_vm in vms:
        refused = [a for a in _secret_accesses(world, box_vm) if a[1] >= 400]
        served = [a for a in _secret_accesses(world, box_vm) if a[1] == 200]
        assert refused and served, f"{box_vm.name}: its secrets were fetched after a first refusal"
    for box_vm in vms:
        unit = "drainctl-agent.service" if box_vm.role == "api" else "drainctl-controller.service"
        wait_until(partial(_ready, box_vm, unit), within_s=120, what=f"{unit} ready on {box_vm.name}")

    for cloud in ("gcp", "azure"):
        addresses = [vm.vm.ip for vm in vms if vm.cloud == cloud and vm.role == "controller"]
        wait_until(partial(_one_leader, addresses), within_s=120,
                   what=f"exactly one {cloud} controller leading ({addresses})")

    # A MIG deletion goes through the guest's graceful shutdown: the agent's hold lasts until the leader
    # has drained the server and released it, within the shutdown window; one drain, in the shared journal.
    api = next(vm for vm in vms if vm.cloud == "gcp" and vm.role == "api")
    controllers = [vm for vm in vms if vm.cloud == "gcp" and vm.role == "controller"]
    deadline = world.delete_gcp(api.name)
    agent = api.init.services["drainctl-agent.service"]
    assert agent.stop_log and "ExecStop timed out" not in agent.stop_log, "the hold ended, not its stop timeout"
    drains = _history(controllers[0], api.name)
    assert len(drains) == 1 and drains[0]["finished"], f"one finished drain of {api.name}: {drains}"
    assert drains[0]["outcome"] is not None and time.time() < deadline, "released before the deadline"


def _history(controller: BoxVm, instance: str) -> list[dict[str, Any]]:
    """The drains of `instance` as a controller's API lists them (its own API token)."""
    token = controller.vm.path("/etc/drainctl/api-token").read_text().strip()
    done = subprocess.run(["curl", "-sSf", "-m", "10", "-H", "@-",
                           f"http://{controller.vm.ip}:{API_PORT}/v1/history?instance={instance}"],
                          input=f"Authorization: Bearer {token}\n", capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, f"history from {controller.name}: {done.stderr}"
    drains: list[dict[str, Any]] = json.loads(done.stdout)["drains"]
    return drains


def _ready(box_vm: BoxVm, unit: str) -> bool:
    service = box_vm.init.services.get(unit)
    return service is not None and service.ready.is_set()


def _one_leader(addresses: list[str]) -> bool:
    return sorted(_readyz(address) for address in addresses) == ["200", "503"]


def _secret_accesses(world: World, box_vm: BoxVm) -> list[tuple[str, int]]:
    """(secret, HTTP status) of the VM's reads, from its cloud's secret store fake."""
    store = world.gateway.secrets if box_vm.cloud == "gcp" else world.gateway.vault
    return [(str(access.resource), int(access.status)) for access in store.accesses
            if access.client == box_vm.vm.ip]
