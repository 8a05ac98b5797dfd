"""On-call's private path to each cloud's controllers: the port it opens, how `make plan` shows it.

The path itself is built with each cloud's network (infra/gcp/network.py, infra/azure/network.py);
docs/runbook.md walks it from a laptop. The plan's notes are read back from the recorded stack, not
from the config: the IAP firewall rule and what it opens (GCP); the Bastion, its subnet, and what
the NSG rules sourced at that subnet allow and refuse (Azure). A reviewer sees the path as it would
be created, and a rule that opened more would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from infra.azure.network import BASTION_SUBNET
from infra.config import DEFAULT_API_PORT, StackConfig
from infra.gcp.network import IAP_TCP_RANGE

if TYPE_CHECKING:  # infra.mocks runs the program, which imports this module
    from infra.mocks import OfflineRun

FIREWALL = "gcp:compute/firewall:Firewall"
BASTION = "azure-native:network:BastionHost"
NSG = "azure-native:network:NetworkSecurityGroup"
VNET = "azure-native:network:VirtualNetwork"


def api_port(config: StackConfig) -> int:
    """The controllers' API port: `drainctl:controller.api_port` where the stack config has the key
    (the per-cloud controller settings), else `DEFAULT_API_PORT`."""
    return int(getattr(config.controller, "api_port", DEFAULT_API_PORT))


def access_notes(run: OfflineRun) -> list[str]:
    """One line per cloud: the path to its controllers' API, and what it opens."""
    notes = []
    for rule in run.of_type(FIREWALL):
        if IAP_TCP_RANGE in rule.inputs.get("sourceRanges", []):
            allows = rule.inputs.get("allows", [])
            ports = ",".join(port for allow in allows for port in allow.get("ports", []))
            targets = ", ".join(rule.inputs.get("targetServiceAccounts", []))
            notes.append(
                f"GCP on-call access: IAP TCP forwarding from {IAP_TCP_RANGE} -> tcp:{ports} on "
                f"{targets} only (firewall {rule.name}); `gcloud compute start-iap-tunnel` "
                "(docs/runbook.md)."
            )
    for host in run.of_type(BASTION):
        notes.append(
            f"Azure on-call access: Bastion {host.name} ({bastion_summary(host.inputs)}) in "
            f"{BASTION_SUBNET} {_bastion_subnet(run)} -> {_bastion_reach(run)}; "
            "`az network bastion tunnel` (docs/runbook.md)."
        )
    return notes


def bastion_summary(p: Mapping[str, Any]) -> str:
    """The plan's summary of a Bastion: its SKU and the features that widen what it reaches."""
    return (
        f"{(p.get('sku') or {}).get('name')}; tunneling {p.get('enableTunneling', False)}, "
        f"IP connect {p.get('enableIpConnect', False)}, "
        f"shareable links {p.get('enableShareableLink', False)}"
    )


def _bastion_subnet(run: OfflineRun) -> str:
    prefixes = [
        subnet.get("addressPrefix")
        for vnet in run.of_type(VNET)
        for subnet in vnet.inputs.get("subnets", [])
        if subnet.get("name") == BASTION_SUBNET
    ]
    return ", ".join(str(prefix) for prefix in prefixes)


def _bastion_reach(run: OfflineRun) -> str:
    """What the NSG rules sourced at the Bastion subnet allow, and which NSGs refuse the rest."""
    subnet = _bastion_subnet(run)
    rules = [
        (nsg.name, rule)
        for nsg in run.of_type(NSG)
        for rule in nsg.inputs.get("securityRules", [])
        if rule.get("sourceAddressPrefix") == subnet
    ]
    allowed = [f"tcp:{rule.get('destinationPortRange')} ({name})"
               for name, rule in rules if rule.get("access") == "Allow"]
    denied = sorted({name for name, rule in rules if rule.get("access") == "Deny"})
    return (f"{', '.join(allowed) or 'nothing'} only; everything else refused by "
            f"{', '.join(denied) or 'NOTHING'}")
