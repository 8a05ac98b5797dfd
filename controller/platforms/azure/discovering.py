"""Azure discovery: the VMs of the configured scale sets, with their agents' private addresses.

Each round lists, per scale set, its VMs (`.../virtualMachineScaleSets/{vmss}/virtualMachines`, Compute API) and
its VMs' network interfaces (`.../virtualMachineScaleSets/{vmss}/networkInterfaces`, Network API), both paginated
with `nextLink`. A VM's name is its Scheduled Events name, `<scale set>_<instance id>` (what `Resources` and IMDS
`compute.name` say, and what the agent's `platform.resource_name` must be); its agent is reached at the primary
NIC's primary IP configuration's `privateIPAddress`. A VM without a NIC address yet waits for the next round; a
malformed VM or NIC is logged once and skipped; any failed list fails the whole round (the inventory is kept).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controller.core.members import Member

PLATFORM = "azure"
log = logging.getLogger(__name__)


class ArmLister(Protocol):
    async def list(self, path: str, api_version: str) -> list[Any]: ...


@dataclass(frozen=True)
class ScaleSet:
    subscription: str
    resource_group: str
    name: str

    @property
    def path(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.Compute/virtualMachineScaleSets/{self.name}")


@dataclass(frozen=True)
class Agents:
    port: int
    token: str
    scheme: str = "http"
    pool: str | None = None
    compute_api_version: str = "2024-07-01"
    network_api_version: str = "2024-05-01"


def private_ips(nics: list[Any]) -> dict[str, str]:
    """VM resource id (lower case) -> the private address of its primary NIC's primary IP configuration."""
    found: dict[str, tuple[bool, str]] = {}
    for nic in nics:
        props = nic.get("properties") if isinstance(nic, dict) else None
        vm = props.get("virtualMachine", {}).get("id") if isinstance(props, dict) else None
        address = _primary_ip(props.get("ipConfigurations")) if isinstance(props, dict) else None
        if isinstance(vm, str) and address:
            primary = bool(props.get("primary", True)) if isinstance(props, dict) else True
            if vm.lower() not in found or (primary and not found[vm.lower()][0]):
                found[vm.lower()] = (primary, address)
    return {vm: address for vm, (_primary, address) in found.items()}


def _primary_ip(configurations: Any) -> str | None:
    if not isinstance(configurations, list):
        return None
    ordered = sorted((c for c in configurations if isinstance(c, dict)),
                     key=lambda c: not c.get("properties", {}).get("primary", False))
    for configuration in ordered:
        address = configuration.get("properties", {}).get("privateIPAddress")
        if isinstance(address, str) and address:
            return address
    return None


class AzureDiscovery:
    def __init__(self, api: ArmLister, scale_sets: Sequence[ScaleSet], agents: Agents) -> None:
        self._api = api
        self._scale_sets = list(scale_sets)
        self._agents = agents
        self._skipped: set[str] = set()

    async def discover(self) -> list[Member]:
        members: list[Member] = []
        for scale_set in self._scale_sets:
            vms = await self._api.list(f"{scale_set.path}/virtualMachines", self._agents.compute_api_version)
            nics = await self._api.list(f"{scale_set.path}/networkInterfaces", self._agents.network_api_version)
            ips = private_ips(nics)
            members += [m for vm in vms if (m := self._member(scale_set, vm, ips)) is not None]
        return members

    def _member(self, scale_set: ScaleSet, vm: Any, ips: dict[str, str]) -> Member | None:
        instance_id = vm.get("instanceId") if isinstance(vm, dict) else None
        resource_id = vm.get("id") if isinstance(vm, dict) else None
        if not isinstance(instance_id, str) or not instance_id or not isinstance(resource_id, str):
            self._skip(f"{scale_set.name}: a VM without instanceId or id: {str(vm)[:120]}")
            return None
        name = f"{scale_set.name}_{instance_id}"
        address = ips.get(resource_id.lower())
        if address is None:
            log.debug("discovery azure: %s has no private address yet", name)
            return None
        computer = vm.get("properties", {}).get("osProfile", {}).get("computerName", "")
        handles = {"instance_id": instance_id, "id": resource_id, "computer_name": str(computer),
                   "scale_set": scale_set.name}
        agents = self._agents
        return Member(name, agents.pool or scale_set.name, f"{agents.scheme}://{address}:{agents.port}",
                      agents.token, PLATFORM, handles)

    def _skip(self, why: str) -> None:
        if why not in self._skipped:
            self._skipped.add(why)
            log.warning("discovery azure: skipped %s", why)
