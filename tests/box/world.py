"""A cloud on one machine: the staging stack's VMs booted from their rendered boot input, in the box.

`World.start(stack)` brings up what the VMs talk to: a bridge carrying the box's service addresses (the
link-local metadata address, the cloud gateway, the database host the scripts name), the box CA, the cloud
fakes (C4) behind one TLS gateway and one link-local server, and a real Postgres on the stack's database
host and port 5432 with the stack's database, user and the password the box stores as the `db-password`
secret. Every secret a script reads is stored (same value in both clouds' stores) and refused once per VM
(the grant "is not there yet"); every artifact object a script fetches is the stack's own
`dist/wheelhouse.tar.gz`. Then `boot_*` starts VMs: namespaces (tests/box/vm.py), the box init
(tests/box/init.py), the VM registered with the fake Compute/ARM and the metadata server, and its boot input
run unmodified as the cloud runs it (GCP: the startup script as root; Azure: cloud-config custom data).
`delete` is a graceful shutdown: the init stops the units in order, then the VM is gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import secrets
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.box.ca import BoxCa
from tests.box.gateway import CloudGateway, RunningGateway
from tests.box.init import Init, apply_cloud_config
from tests.box.linklocal import LinkLocal, RunningLinkLocal
from tests.box.stack import AzureController, AzureSet, GcpController, GcpGroup, StagingStack, decode
from tests.box.vm import Bridge, Machines, Vm, VmSpec
from tests.fakes.gce_compute import FakeCompute
from tests.support import REPO_ROOT
from tests.support.postgres import PostgresServer

GATEWAY_ADDRESS = "10.255.255.10"
"""Where the cloud names resolve in every VM (a box service address on the bridge)."""
METADATA_ADDRESS = "169.254.169.254"
WHEELHOUSE = REPO_ROOT / "dist" / "wheelhouse.tar.gz"
BOOT_TIMEOUT_S = 900.0
"""A boot script's own bound: its retries give up after 600 s (C1), the offline install takes a minute."""


@dataclass
class BoxVm:
    """A VM of the world: its namespaces, its init, and how its boot went."""

    vm: Vm
    init: Init
    cloud: str
    role: str
    """`api` or `controller`."""
    instance_id: str = ""
    boot: subprocess.CompletedProcess[str] | None = None
    booted: threading.Event = field(default_factory=threading.Event)

    @property
    def name(self) -> str:
        return self.vm.name


class World:
    """The running box (see the module docstring); `close` tears everything down."""

    def __init__(self, stack: StagingStack, root: Path, stack_exit: contextlib.ExitStack) -> None:
        self.stack = stack
        self.root = root
        self.vms: dict[str, BoxVm] = {}
        self.secret_values: dict[str, str] = {}
        self._exit = stack_exit
        self._lock = threading.Lock()
        self._addresses: dict[str, Iterator[str]] = {}
        self._numbers = itertools.count(1)
        self.ca = BoxCa.create(root / "ca")
        self.bridge = Bridge.create(f"bxw{int(time.time()) % 100000:05d}", [
            f"{METADATA_ADDRESS}/32", f"{GATEWAY_ADDRESS}/32", f"{stack.database_host}/32"])
        self.machines = Machines(root / "vms", self.bridge)
        stack_exit.callback(self.machines.close)
        self.postgres = self._postgres()
        self.gateway: RunningGateway = stack_exit.enter_context(
            CloudGateway(self.ca, compute=FakeCompute(project=stack.project)).serve(GATEWAY_ADDRESS))
        self.link: RunningLinkLocal = stack_exit.enter_context(LinkLocal().serve(METADATA_ADDRESS))
        self._store_secrets()
        self._store_artifacts()
        self._register_groups()

    @classmethod
    @contextlib.contextmanager
    def start(cls, stack: StagingStack, root: Path) -> Iterator[World]:
        with contextlib.ExitStack() as stack_exit:
            world = cls(stack, root, stack_exit)
            try:
                yield world
            finally:
                world.shutdown_all()

    # --- the box's services ----------------------------------------------------------------------------

    def _postgres(self) -> PostgresServer:
        database = self.stack.config.database
        password = self.secret("db-password")
        server = PostgresServer.start(listen=f"127.0.0.1,{self.stack.database_host}", port=5432)
        self._exit.callback(server.stop)
        # The journal URLs say sslmode=require: the server speaks TLS (the box CA's leaf will do).
        server.options = server.tls_files(self.ca.cert_path, self.ca.key_path)
        server.restart()
        server.allow("0.0.0.0/0")
        user = database.user
        if user != "drainctl":
            server.psql(f'CREATE ROLE "{user}" LOGIN')
        server.psql(f"ALTER ROLE \"{user}\" PASSWORD '{password}'")
        for name in sorted({database.name, *self.stack.names.databases} - {"postgres"}):
            server.psql(f'CREATE DATABASE "{name}" OWNER "{user}"')
        return server

    def secret(self, name: str) -> str:
        """The value the box stores for a secret named `...<name>` (one value per name, both clouds)."""
        key = next((known for known in ("db-password", "tls-certificate") if name.endswith(known)), name)
        if key not in self.secret_values:
            alphabet = string.ascii_letters + string.digits
            self.secret_values[key] = "".join(secrets.choice(alphabet) for _ in range(32))
        return self.secret_values[key]

    def _store_secrets(self) -> None:
        tls = self.ca.cert_path.read_text() + self.ca.key_path.read_text()
        for project, secret_id in self.stack.names.gcp_secrets:
            self.gateway.secrets.put(project, secret_id, self.secret(secret_id))
        for vault, name in self.stack.names.azure_secrets:
            value = tls if name.endswith("tls-certificate") else self.secret(name)
            self.gateway.vault.put(vault, name, value)
        self.gateway.secrets.refuse_first(per_client=1)
        self.gateway.vault.refuse_first(per_client=1)

    def _store_artifacts(self) -> None:
        names = self.stack.names
        if not (names.gcp_objects or names.azure_blobs):
            return
        data = WHEELHOUSE.read_bytes()
        for bucket, name in names.gcp_objects:
            self.gateway.storage.put(bucket, name, data)
        for account, container, blob in names.azure_blobs:
            self.gateway.blob.put(account, container, blob, data)

    def _register_groups(self) -> None:
        for group in self.stack.gcp_groups:
            self.gateway.compute.add_group(group.region, group.name, [])
        # The edge's backend service, whose getHealth the GCP controllers observe (issue 15): a MIG deletion is
        # out of its group at once, so the box's replacements are observed out of rotation at the first look.
        backends = {str(b.outputs["name"]) for b in self.stack.run.of_type("gcp:compute/backendService:BackendService")}
        for name in sorted(backends):
            self.gateway.compute.add_backend_service(name, [(g.region, g.name) for g in self.stack.gcp_groups])
        for scale_set in self.stack.azure_sets:
            self.gateway.arm.add_scale_set(self.stack.subscription, scale_set.resource_group, scale_set.name, {})

    def hosts(self) -> dict[str, str]:
        """Every VM's /etc/hosts: the cloud names to the gateway, the metadata server's name."""
        names = self.stack.names
        lines = self.gateway.hosts_lines(vaults=sorted({vault for vault, _ in names.azure_secrets}),
                                         accounts=sorted({account for account, _, _ in names.azure_blobs}))
        hosts = {line.split()[1]: line.split()[0] for line in lines}
        hosts["metadata.google.internal"] = METADATA_ADDRESS
        if not _is_address(self.stack.database_host):
            hosts[self.stack.database_host] = self.stack.database_host
        return hosts

    # --- VMs -----------------------------------------------------------------------------------------------

    def _address(self, cidr: str) -> str:
        with self._lock:
            if cidr not in self._addresses:
                self._addresses[cidr] = (str(host) for host in itertools.islice(
                    ipaddress.ip_network(cidr).hosts(), 10, None))
            return next(self._addresses[cidr])

    def _machine(self, name: str, address: str, cloud: str, role: str, hostname: str = "") -> BoxVm:
        spec = VmSpec(name, address, self.hosts(), self.ca.bundle_path, hostname)
        vm = self.machines.boot(spec, systemctl=Init.shim(self.machines.root / name))
        box_vm = BoxVm(vm, Init(vm), cloud, role)
        self.vms[name] = box_vm
        return box_vm

    def boot_gcp(self, group: GcpGroup) -> BoxVm:
        """The MIG creates a VM: a name, a zone, an address in the region's subnet; the startup script runs."""
        number = next(self._numbers)
        name = f"{group.base_instance_name}-{number:04x}"
        zone = group.zones[number % len(group.zones)]
        address = self._address(group.cidr)
        self.link.add_gcp_vm(address, name, zone, self.stack.project, group.email)
        self.gateway.compute.add_instance(group.region, group.name, name, network_ip=address, zone=zone)
        box_vm = self._machine(name, address, "gcp", "api")
        self._run_in_background(box_vm, lambda: self._startup_script(box_vm, group.script))
        return box_vm

    def boot_gcp_controller(self, controller: GcpController) -> BoxVm:
        self.link.add_gcp_vm(controller.address, controller.name, controller.zone, self.stack.project,
                             controller.email)
        box_vm = self._machine(controller.name, controller.address, "gcp", "controller")
        self._run_in_background(box_vm, lambda: self._startup_script(box_vm, controller.script))
        return box_vm

    def boot_azure(self, scale_set: AzureSet) -> BoxVm:
        """The scale set adds an instance: `<set>_<id>`, host name `<prefix><6 digits>`, its custom data."""
        number = next(self._numbers)
        instance_id = str(number)
        name = f"{scale_set.name}_{instance_id}"
        address = self._address(scale_set.cidr)
        computer_name = f"{scale_set.computer_name_prefix}{number:06d}"
        self.link.add_azure_vm(address, name, computer_name,
                               custom_data=scale_set.custom_data, client_ids=scale_set.client_ids,
                               scale_set=scale_set.name, resource_group=scale_set.resource_group,
                               subscription=self.stack.subscription, location=scale_set.region)
        self.gateway.arm.add_vm(self.stack.subscription, scale_set.resource_group, scale_set.name, instance_id,
                                address)
        box_vm = self._machine(name, address, "azure", "api", computer_name)
        box_vm.instance_id = instance_id
        self._run_in_background(box_vm, lambda: apply_cloud_config(box_vm.vm, decode(scale_set.custom_data),
                                                                   timeout_s=BOOT_TIMEOUT_S))
        return box_vm

    def boot_azure_controller(self, controller: AzureController) -> BoxVm:
        self.link.add_azure_vm(controller.address, controller.name, controller.computer_name,
                               user_data=controller.user_data, custom_data=controller.custom_data,
                               client_ids=controller.client_ids)
        box_vm = self._machine(controller.computer_name, controller.address, "azure", "controller")
        self._run_in_background(box_vm, lambda: apply_cloud_config(box_vm.vm, decode(controller.custom_data),
                                                                   timeout_s=BOOT_TIMEOUT_S))
        return box_vm

    def _startup_script(self, box_vm: BoxVm, script: str) -> subprocess.CompletedProcess[str]:
        """google-guest-agent: the startup script, as root, from a file."""
        path = box_vm.vm.root / "startup-script"
        path.write_text(script)
        return box_vm.vm.exec(["/bin/bash", str(path)], timeout_s=BOOT_TIMEOUT_S)

    def _run_in_background(self, box_vm: BoxVm, boot: Any) -> None:
        def run() -> None:
            try:
                box_vm.boot = boot()
            except Exception as exc:  # a boot that cannot even run is a failed boot, reported by the test
                box_vm.boot = subprocess.CompletedProcess([], 255, "", f"box: {exc!r}")
            finally:
                (box_vm.vm.root / "boot.log").write_text(
                    (box_vm.boot.stdout + box_vm.boot.stderr) if box_vm.boot else "")
                box_vm.booted.set()

        threading.Thread(target=run, name=f"boot-{box_vm.name}", daemon=True).start()

    def boot_all(self) -> list[BoxVm]:
        """The stack as `pulumi up` leaves it: every group at its size, both controllers per cloud."""
        started = [self.boot_gcp_controller(c) for c in self.stack.gcp_controllers]
        started += [self.boot_azure_controller(c) for c in self.stack.azure_controllers]
        for group in self.stack.gcp_groups:
            assert self.stack.config.gcp is not None
            size = next(r.min_replicas for r in self.stack.config.gcp.regions if r.name == group.region)
            started += [self.boot_gcp(group) for _ in range(size)]
        for scale_set in self.stack.azure_sets:
            started += [self.boot_azure(scale_set) for _ in range(scale_set.capacity)]
        return started

    def delete_gcp(self, name: str) -> float:
        """The MIG deletes a VM: DELETING with a graceful shutdown window of the stack's notice (the template's
        max_duration), the guest shuts down (units stopped in order, the agent's hold first), then it is gone.
        Returns the unix time the window ends."""
        notice_s = int(self.stack.config.budget.platform_notice_s)
        deadline = self.gateway.compute.mark(name, "DELETING", status="PENDING_STOP", shutdown_s=notice_s)
        self.delete(name)
        self.gateway.compute.remove(name)
        return float(deadline)

    def delete(self, name: str) -> None:
        """The VM goes away through its guest's graceful shutdown, then leaves the fakes."""
        box_vm = self.vms.pop(name)
        box_vm.init.shutdown()
        self.link.remove_vm(box_vm.vm.ip)
        self.machines.destroy(name)

    def crash(self, name: str) -> None:
        """The VM fails at once (a host failure, a kernel panic): its address goes silent first (no FIN or RST
        reaches anyone: the journal's server and the peers see a dead peer, not a closed one), then every process
        in it gets SIGKILL and nothing is restarted, no ExecStop runs. What a `kill -9` of its controller would
        be if systemd could not bring the process back."""
        box_vm = self.vms.pop(name)
        for service in box_vm.init.services.values():
            service.stopping.set()  # the init of a dead machine restarts nothing
        box_vm.vm.unplug()
        self.link.remove_vm(box_vm.vm.ip)
        self.machines.destroy(name)
        box_vm.init.close()

    def shutdown_all(self) -> None:
        for name in list(self.vms):
            with contextlib.suppress(Exception):
                self.vms[name].init.close()
            self.vms.pop(name)
        self.machines.close()


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
