"""Whether the stack needs a private path between the clouds, the path each region's reads take, and the pinned
numbers of that path (BGP ASNs, tunnel inside addresses).

Pure decisions, like `placement.py`. A VPN exists exactly when something reads across clouds: a region of the
other cloud reads its nearest replica, and the other cloud's controllers read the primary. With a single cloud
(or a database every region of which reads in its own cloud) there is no VPN.

The path: GCP HA VPN (two interfaces) with a Cloud Router speaking BGP, to an active-active Azure VPN gateway
(two instances): tunnel 0 from GCP interface 0 to Azure instance 0, tunnel 1 from interface 1 to instance 1
(HA VPN's TWO_IPS_REDUNDANCY topology). Inside addresses are APIPA /30s in 169.254.21.0-169.254.22.255, the
range Azure accepts for custom BGP addresses; GCP takes any /30 of 169.254.0.0/16.
Sources: https://cloud.google.com/network-connectivity/docs/vpn/tutorials/create-ha-vpn-connections-google-cloud-azure,
https://learn.microsoft.com/azure/vpn-gateway/bgp-howto#2-create-the-vpn-gateway-for-testvnet1-with-bgp-parameters
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from infra.config import StackConfig
from infra.placement import DatabasePlacement

GCP_ASN = 65010
"""The Cloud Router's private ASN (64512-65534)."""
AZURE_ASN = 65515
"""Azure VPN gateways' default ASN."""
TUNNEL_RANGES = ("169.254.21.0/30", "169.254.22.0/30")
"""One /30 per tunnel: GCP takes the first host, Azure (custom APIPA BGP address) the second."""
CLOUD_DNS_FORWARDER_RANGE = "35.199.192.0/19"
"""Source of Cloud DNS's queries to a private forwarding target: the Cloud Router must advertise it so the Azure
resolver's answers route back over the VPN (https://cloud.google.com/dns/docs/zones/forwarding-zones)."""

LOCAL, PEERING, VPN = "same network", "VNet peering", "HA VPN"


@dataclass(frozen=True)
class Tunnel:
    index: int
    gcp_address: str
    """The Cloud Router interface's address (its BGP address); `/30` appended for the interface range."""
    azure_address: str
    """The Azure gateway instance's custom APIPA BGP address."""


def tunnels() -> tuple[Tunnel, ...]:
    out = []
    for index, cidr in enumerate(TUNNEL_RANGES):
        first, second = list(ipaddress.IPv4Network(cidr).hosts())
        out.append(Tunnel(index=index, gcp_address=str(first), azure_address=str(second)))
    return tuple(out)


def needs_vpn(config: StackConfig) -> bool:
    """Both clouds present means someone reads across: the other cloud's regions and controllers."""
    return bool(config.gcp and config.azure)


def read_paths(config: StackConfig, placement: DatabasePlacement, azure_hub: str | None) -> dict[str, str]:
    """Region -> how its reads reach its read host (the `routing` output's `read_path`)."""
    paths = {}
    for region, source in placement.read_region.items():
        cross = region not in config.regions(placement.cloud)
        if not cross:
            paths[region] = LOCAL if (source == region or placement.cloud == "gcp") else PEERING
            continue
        hops = [VPN]
        if placement.cloud == "azure" and source != azure_hub:
            hops.append(f"{PEERING} {azure_hub} -> {source}")
        elif placement.cloud == "gcp" and region != azure_hub:
            hops.insert(0, f"{PEERING} {region} -> {azure_hub}")
        paths[region] = ", then ".join(hops)
    return paths
