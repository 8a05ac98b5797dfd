"""GCP's half of the private path to Azure: HA VPN, Cloud Router with BGP, DNS forwarding to Azure's resolver.

- `HaVpnGateway` (two interfaces) in the GCP hub region; the VPC's GLOBAL routing mode makes the routes the Cloud
  Router learns apply to every region's subnet.
- `ExternalVpnGateway` (TWO_IPS_REDUNDANCY) with the Azure gateway's two instance addresses; one `VPNTunnel` per
  pair (IKEv2, shared secret from pulumi_random), a `RouterInterface` and a `RouterPeer` (BGP to Azure's ASN) each.
- The Cloud Router advertises every subnet, plus (custom ranges) Cloud SQL's private services range when the
  database is on GCP and Cloud DNS's forwarder range when GCP forwards DNS to Azure.
- With the database on GCP, the private services peering exports the learned routes (`exportCustomRoutes`), or
  Cloud SQL could not answer Azure clients.
- With the database on Azure, a private Cloud DNS forwarding zone sends `postgres.database.azure.com` to the
  Azure DNS Private Resolver's inbound endpoint over the VPN (`forwardingPath: private`).
Sources: pulumi_gcp `compute.HaVpnGateway`, `compute.VPNTunnel`, `compute.RouterPeer`, `dns.ManagedZone`
docstrings; https://cloud.google.com/network-connectivity/docs/vpn/concepts/topologies,
https://cloud.google.com/vpc/docs/vpc-peering#importing-exporting-routes,
https://cloud.google.com/dns/docs/zones/forwarding-zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra import interconnect


@dataclass(frozen=True)
class DnsForwarding:
    dns_name: str
    """The zone forwarded, with the trailing dot (`postgres.database.azure.com.`)."""
    target_ip: pulumi.Input[str]
    """The Azure DNS Private Resolver's inbound endpoint."""


@dataclass(frozen=True)
class GcpVpnArgs:
    region: str
    network_id: pulumi.Input[str]
    network_name: pulumi.Input[str]
    azure_gateway_ips: Sequence[pulumi.Input[str]]
    """Azure VPN gateway instance 0 and 1 public addresses."""
    shared_keys: Sequence[pulumi.Input[str]]
    """One IKE pre-shared key per tunnel (secret)."""
    advertised_ranges: Sequence[str]
    """Custom ranges the Cloud Router advertises besides all subnets."""
    private_services_peering: pulumi.Input[str] | None = None
    """The private services connection's peering name, to export learned routes into it (database on GCP)."""
    dns: DnsForwarding | None = None


class GcpVpn(pulumi.ComponentResource):
    interface_ips: pulumi.Output[list[str]]
    """The HA VPN gateway's two public addresses (Azure's local network gateways point at them)."""

    def __init__(self, name: str, args: GcpVpnArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:Vpn", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gateway = gcp.compute.HaVpnGateway(f"{name}-gateway", region=args.region, network=args.network_id, opts=child)
        peer = gcp.compute.ExternalVpnGateway(
            f"{name}-azure",
            redundancy_type="TWO_IPS_REDUNDANCY",
            interfaces=[
                gcp.compute.ExternalVpnGatewayInterfaceArgs(id=index, ip_address=address)
                for index, address in enumerate(args.azure_gateway_ips)
            ],
            description="The Azure VPN gateway's two active-active instances.",
            opts=child,
        )
        router = gcp.compute.Router(
            f"{name}-router",
            region=args.region,
            network=args.network_id,
            bgp=gcp.compute.RouterBgpArgs(
                asn=interconnect.GCP_ASN,
                advertise_mode="CUSTOM",
                advertised_groups=["ALL_SUBNETS"],
                advertised_ip_ranges=[
                    gcp.compute.RouterBgpAdvertisedIpRangeArgs(range=cidr) for cidr in args.advertised_ranges
                ],
            ),
            opts=child,
        )
        for tunnel, key in zip(interconnect.tunnels(), args.shared_keys, strict=True):
            vpn_tunnel = gcp.compute.VPNTunnel(
                f"{name}-tunnel-{tunnel.index}",
                region=args.region,
                vpn_gateway=gateway.id,
                vpn_gateway_interface=tunnel.index,
                peer_external_gateway=peer.id,
                peer_external_gateway_interface=tunnel.index,
                router=router.id,
                ike_version=2,
                shared_secret=key,
                opts=child,
            )
            interface = gcp.compute.RouterInterface(
                f"{name}-if-{tunnel.index}",
                region=args.region,
                router=router.name,
                ip_range=f"{tunnel.gcp_address}/30",
                vpn_tunnel=vpn_tunnel.name,
                opts=child,
            )
            gcp.compute.RouterPeer(
                f"{name}-bgp-{tunnel.index}",
                region=args.region,
                router=router.name,
                interface=interface.name,
                ip_address=tunnel.gcp_address,
                peer_ip_address=tunnel.azure_address,
                peer_asn=interconnect.AZURE_ASN,
                opts=child,
            )
        if args.private_services_peering is not None:
            gcp.compute.NetworkPeeringRoutesConfig(
                f"{name}-private-services-routes",
                network=args.network_name,
                peering=args.private_services_peering,
                import_custom_routes=False,
                export_custom_routes=True,
                opts=child,
            )
        if args.dns is not None:
            gcp.dns.ManagedZone(
                f"{name}-dns-forward",
                dns_name=args.dns.dns_name,
                description="Azure private database names, answered by the Azure DNS Private Resolver over the VPN.",
                visibility="private",
                private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
                    networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=args.network_id)]
                ),
                forwarding_config=gcp.dns.ManagedZoneForwardingConfigArgs(
                    target_name_servers=[
                        gcp.dns.ManagedZoneForwardingConfigTargetNameServerArgs(
                            ipv4_address=args.dns.target_ip, forwarding_path="private"
                        )
                    ]
                ),
                opts=child,
            )
        self.interface_ips = gateway.vpn_interfaces.apply(
            lambda interfaces: [interface.ip_address or "" for interface in interfaces or []]
        )
        self.register_outputs({"interface_ips": self.interface_ips, "gateway": gateway.id})
