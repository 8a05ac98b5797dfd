"""The staging stack as the box reads it: every VM's rendered boot input and the names the scripts call.

The stack is rendered through the Pulumi mocks (infra/mocks.py, as the offline plan and tests/infra do). From
the recorded resources the box takes each VM kind's boot input exactly as the cloud would hand it to the VM
(GCP: the instance template's and the controller instances' `metadataStartupScript`; Azure: the scale set's
custom data, the controller VMs' custom data and userData), the groups (MIG, scale set) and the controllers'
addresses (stack export `controllers`). The names a script calls (secrets, artifact objects, vaults, storage
accounts) are read from the scripts themselves (the fetch helpers of infra/scripts.py, contract C1), so the
fakes serve what the scripts ask for, not what the box assumes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.config import StackConfig, load_stack_file
from infra.mocks import FAKE_SUBSCRIPTION, OfflineRun, Recorded, run_offline
from tests.support import REPO_ROOT

STAGING = REPO_ROOT / "stacks" / "Pulumi.staging.yaml"
GCP_SECRET = re.compile(r"\bgcp_secret\s+'?([\w.-]+)'?\s+'?([\w.-]+)'?")
GCP_OBJECT = re.compile(r"\bgcp_object\s+'?([\w.-]+)'?\s+'?([\w./%-]+)'?")
AZURE_SECRET = re.compile(r"\bazure_secret\s+'?([\w.-]+)'?\s+'?([\w.-]+)'?")
JOURNAL = re.compile(r"^journal: postgresql://[^/\s]+/(\w+)", re.M)
AZURE_BLOB = re.compile(r"\bazure_blob\s+'?([\w.-]+)'?\s+'?([\w.-]+)'?\s+'?([\w./%-]+)'?")


@dataclass(frozen=True)
class GcpGroup:
    """A regional MIG and the instance template its VMs boot from."""

    name: str
    region: str
    base_instance_name: str
    zones: list[str]
    cidr: str
    script: str
    email: str


@dataclass(frozen=True)
class GcpController:
    name: str
    zone: str
    address: str
    script: str
    email: str


@dataclass(frozen=True)
class AzureSet:
    """A scale set: its VMs are `<name>_<instance id>`, host names `<prefix><6 digits>`."""

    name: str
    region: str
    resource_group: str
    computer_name_prefix: str
    capacity: int
    cidr: str
    custom_data: str
    client_ids: list[str]


@dataclass(frozen=True)
class AzureController:
    name: str
    computer_name: str
    address: str
    custom_data: str
    user_data: str
    client_ids: list[str]


@dataclass
class Names:
    """What the scripts fetch: (project, secret id), (bucket, object), (vault, name), (account, container, blob)."""

    gcp_secrets: set[tuple[str, str]] = field(default_factory=set)
    gcp_objects: set[tuple[str, str]] = field(default_factory=set)
    azure_secrets: set[tuple[str, str]] = field(default_factory=set)
    azure_blobs: set[tuple[str, str, str]] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    """The journals' databases the controllers' controller.yaml name."""

    def read(self, script: str) -> None:
        self.gcp_secrets |= set(GCP_SECRET.findall(script))
        self.gcp_objects |= set(GCP_OBJECT.findall(script))
        self.azure_secrets |= set(AZURE_SECRET.findall(script))
        self.azure_blobs |= set(AZURE_BLOB.findall(script))
        self.databases |= set(JOURNAL.findall(script))


@dataclass
class StagingStack:
    config: StackConfig
    run: OfflineRun
    gcp_groups: list[GcpGroup]
    gcp_controllers: list[GcpController]
    azure_sets: list[AzureSet]
    azure_controllers: list[AzureController]
    names: Names
    database_host: str

    @property
    def project(self) -> str:
        assert self.config.gcp is not None
        return self.config.gcp.project

    @property
    def subscription(self) -> str:
        return FAKE_SUBSCRIPTION


def render(path: Path = STAGING) -> StagingStack:
    """Render the stack offline and pick out what the box boots."""
    config = load_stack_file(path)
    run = run_offline(config)
    controllers = run.outputs.get("controllers", {})
    stack = StagingStack(
        config, run, _gcp_groups(config, run), _gcp_controllers(run, controllers.get("gcp", [])),
        _azure_sets(config, run), _azure_controllers(run, controllers.get("azure", [])), Names(),
        _database_host(run),
    )
    for script in stack_scripts(stack):
        stack.names.read(script)
    return stack


def stack_scripts(stack: StagingStack) -> list[str]:
    """Every rendered boot script (Azure's decoded from custom data / userData)."""
    scripts = [group.script for group in stack.gcp_groups] + [c.script for c in stack.gcp_controllers]
    scripts += [cloud_config_script(decode(s.custom_data)) for s in stack.azure_sets]
    scripts += [decode(c.user_data) for c in stack.azure_controllers]
    return scripts


def decode(value: str) -> str:
    return base64.b64decode(value).decode()


def cloud_config_script(document: str) -> str:
    """The boot script a scale set's cloud-config writes (its write_files' contents, joined)."""
    config = yaml.safe_load(document)
    return "\n".join(str(entry.get("content", "")) for entry in config.get("write_files", []))


def _gcp_groups(config: StackConfig, run: OfflineRun) -> list[GcpGroup]:
    assert config.gcp is not None
    cidrs = {region.name: str(region.cidr) for region in config.gcp.regions}
    templates = {t.region: t for t in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")}
    groups = []
    for mig in run.of_type("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
        template = templates[mig.region].inputs
        groups.append(GcpGroup(
            str(mig.outputs.get("name") or mig.name), mig.region, str(mig.inputs["baseInstanceName"]),
            list(mig.inputs["distributionPolicyZones"]), cidrs[mig.region], str(template["metadataStartupScript"]),
            str(template["serviceAccount"]["email"]),
        ))
    return groups


def _role(resource: Recorded, key: str) -> str:
    return str((resource.inputs.get(key) or {}).get("drainctl-role", ""))


def _gcp_controllers(run: OfflineRun, addresses: list[str]) -> list[GcpController]:
    found = [r for r in run.of_type("gcp:compute/instance:Instance") if _role(r, "labels").startswith("controller")]
    found.sort(key=lambda r: _role(r, "labels") != "controller-active")
    return [
        GcpController(str(r.outputs.get("name") or r.name), str(r.inputs["zone"]), address,
                      str(r.inputs["metadataStartupScript"]), str(r.inputs["serviceAccount"]["email"]))
        for r, address in zip(found, addresses, strict=True)
    ]


def _client_ids(run: OfflineRun, identity: dict[str, Any]) -> list[str]:
    """The client ids of a resource's user-assigned identities (their resource ids are the keys)."""
    wanted = set(identity.get("userAssignedIdentities") or [])
    identities = run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    return [str(i.outputs["clientId"]) for i in identities if f"{i.name}-id" in wanted or i.outputs.get("id") in wanted]


def _azure_sets(config: StackConfig, run: OfflineRun) -> list[AzureSet]:
    assert config.azure is not None
    cidrs = {region.name: str(region.cidr) for region in config.azure.regions}
    sets = []
    for vmss in run.of_type("azure-native:compute:VirtualMachineScaleSet"):
        profile = vmss.inputs["virtualMachineProfile"]["osProfile"]
        sets.append(AzureSet(
            str(vmss.outputs.get("name") or vmss.name), vmss.region, str(vmss.inputs["resourceGroupName"]),
            str(profile["computerNamePrefix"]), int(vmss.inputs["sku"]["capacity"]), cidrs[vmss.region],
            str(profile["customData"]), _client_ids(run, vmss.inputs["identity"]),
        ))
    return sets


def _azure_controllers(run: OfflineRun, addresses: list[str]) -> list[AzureController]:
    found = [r for r in run.of_type("azure-native:compute:VirtualMachine") if _role(r, "tags").startswith("controller")]
    found.sort(key=lambda r: _role(r, "tags") != "controller-active")
    return [
        AzureController(str(r.outputs.get("name") or r.name), str(r.inputs["osProfile"]["computerName"]), address,
                        str(r.inputs["osProfile"]["customData"]), str(r.inputs["userData"]),
                        _client_ids(run, r.inputs["identity"]))
        for r, address in zip(found, addresses, strict=True)
    ]


def _database_host(run: OfflineRun) -> str:
    """The primary's host every script writes (stack export `routing`: one write host for all regions)."""
    hosts = {str(route["write_host"]) for route in run.outputs["routing"].values()}
    if len(hosts) != 1:
        raise ValueError(f"the box runs one database; the stack names {sorted(hosts)}")
    return hosts.pop()
