"""Azure's half of the private path to GCP: an active-active VPN gateway with BGP, its connections to GCP's HA VPN,
and a DNS Private Resolver whose inbound endpoint answers GCP's forwarded queries for the private database zone.

- `AzureVpnGateway`: two zone-redundant Standard public IPs, a route-based `VpnGw2AZ` gateway in the hub's
  `GatewaySubnet`, active-active (one instance per IP), BGP with Azure's ASN and one custom APIPA BGP address per
  instance (169.254.21.2 and 169.254.22.2: Azure accepts 169.254.21.0-169.254.22.255).
- `AzureVpnLinks`: one local network gateway per GCP HA VPN interface (its public address, GCP's ASN and BGP
  address) and one IPsec connection each, BGP on, with the same pre-shared key as the GCP tunnel.
- `AzureDnsResolver`: a DNS Private Resolver in the hub VNet and an inbound endpoint at a pinned address; the
  hub VNet is linked to the private DNS zone of the flexible servers, so the resolver answers their names.
Sources: pulumi_azure_native `network.VirtualNetworkGateway`, `network.VirtualNetworkGatewayConnection`,
`dnsresolver.InboundEndpoint` docstrings; https://learn.microsoft.com/azure/vpn-gateway/active-active-portal,
https://learn.microsoft.com/azure/vpn-gateway/bgp-howto, https://learn.microsoft.com/azure/dns/dns-private-resolver-overview
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

from infra import interconnect

GATEWAY_SKU = "VpnGw2AZ"
"""Zone-redundant, BGP and active-active capable (AZ SKUs need zone-redundant Standard public IPs)."""
IP_CONFIGS = ("instance0", "instance1")


def _child_id(base: pulumi.Output[str], kind: str, name: str) -> pulumi.Output[str]:
    return base.apply(lambda parent: f"{parent}/{kind}/{name}")


def _item(values: pulumi.Output[Sequence[str]], index: int) -> pulumi.Output[str]:
    return values.apply(lambda items: items[index])


@dataclass(frozen=True)
class AzureVpnGatewayArgs:
    location: str
    resource_group_name: pulumi.Input[str]
    gateway_subnet_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]


class AzureVpnGateway(pulumi.ComponentResource):
    gateway: azure.network.VirtualNetworkGateway
    gateway_id: pulumi.Output[str]
    public_ips: list[pulumi.Output[str]]
    ip_configuration_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: AzureVpnGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:VpnGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gateway_name = f"drainctl-vpn-{args.location}"
        base = pulumi.Output.all(args.subscription_id, args.resource_group_name).apply(
            lambda parts: f"/subscriptions/{parts[0]}/resourceGroups/{parts[1]}/providers/Microsoft.Network/"
            f"virtualNetworkGateways/{gateway_name}"
        )
        self.ip_configuration_ids = [_child_id(base, "ipConfigurations", config) for config in IP_CONFIGS]
        addresses = [
            azure.network.PublicIPAddress(
                f"{name}-ip-{index}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                sku=azure.network.PublicIPAddressSkuArgs(name="Standard"),
                public_ip_allocation_method="Static",
                zones=["1", "2", "3"],
                opts=child,
            )
            for index in range(len(IP_CONFIGS))
        ]
        self.gateway = azure.network.VirtualNetworkGateway(
            f"{name}-gateway",
            virtual_network_gateway_name=gateway_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            gateway_type=azure.network.VirtualNetworkGatewayType.VPN,
            vpn_type=azure.network.VpnType.ROUTE_BASED,
            vpn_gateway_generation=azure.network.VpnGatewayGeneration.GENERATION2,
            sku=azure.network.VirtualNetworkGatewaySkuArgs(name=GATEWAY_SKU, tier=GATEWAY_SKU),
            active_active=True,
            enable_bgp=True,
            bgp_settings=azure.network.BgpSettingsArgs(
                asn=interconnect.AZURE_ASN,
                bgp_peering_addresses=[
                    azure.network.IPConfigurationBgpPeeringAddressArgs(
                        ipconfiguration_id=config_id, custom_bgp_ip_addresses=[tunnel.azure_address]
                    )
                    for config_id, tunnel in zip(self.ip_configuration_ids, interconnect.tunnels(), strict=True)
                ],
            ),
            ip_configurations=[
                azure.network.VirtualNetworkGatewayIPConfigurationArgs(
                    name=config,
                    private_ip_allocation_method="Dynamic",
                    subnet=azure.network.SubResourceArgs(id=args.gateway_subnet_id),
                    public_ip_address=azure.network.SubResourceArgs(id=address.id),
                )
                for config, address in zip(IP_CONFIGS, addresses, strict=True)
            ],
            opts=child,
        )
        self.gateway_id = self.gateway.id
        self.public_ips = [address.ip_address.apply(lambda ip: ip or "") for address in addresses]
        self.register_outputs({"gateway_id": self.gateway_id, "public_ips": self.public_ips})


@dataclass(frozen=True)
class AzureVpnLinksArgs:
    location: str
    resource_group_name: pulumi.Input[str]
    gateway: AzureVpnGateway
    gcp_interface_ips: pulumi.Input[Sequence[str]]
    """GCP HA VPN interface 0 and 1 public addresses."""
    shared_keys: Sequence[pulumi.Input[str]]


class AzureVpnLinks(pulumi.ComponentResource):
    def __init__(self, name: str, args: AzureVpnLinksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:VpnLinks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        gcp_ips = pulumi.Output.from_input(args.gcp_interface_ips)
        for tunnel, key, config_id in zip(
            interconnect.tunnels(), args.shared_keys, args.gateway.ip_configuration_ids, strict=True
        ):
            local = azure.network.LocalNetworkGateway(
                f"{name}-gcp-{tunnel.index}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                gateway_ip_address=_item(gcp_ips, tunnel.index),
                bgp_settings=azure.network.BgpSettingsArgs(
                    asn=interconnect.GCP_ASN, bgp_peering_address=tunnel.gcp_address
                ),
                opts=child,
            )
            azure.network.VirtualNetworkGatewayConnection(
                f"{name}-gcp-{tunnel.index}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                connection_type=azure.network.VirtualNetworkGatewayConnectionType.IPSEC,
                connection_protocol=azure.network.VirtualNetworkGatewayConnectionProtocol.IK_EV2,
                virtual_network_gateway1=azure.network.VirtualNetworkGatewayArgs(id=args.gateway.gateway_id),
                local_network_gateway2=azure.network.LocalNetworkGatewayArgs(id=local.id),
                enable_bgp=True,
                gateway_custom_bgp_ip_addresses=[
                    azure.network.GatewayCustomBgpIpAddressIpConfigurationArgs(
                        ip_configuration_id=config_id, custom_bgp_ip_address=tunnel.azure_address
                    )
                ],
                shared_key=key,
                opts=child,
            )
        self.register_outputs({})


@dataclass(frozen=True)
class AzureDnsResolverArgs:
    location: str
    resource_group_name: pulumi.Input[str]
    vnet_id: pulumi.Input[str]
    inbound_subnet_id: pulumi.Input[str]
    inbound_ip: str
    """Pinned, so GCP's forwarding zone can name it before the endpoint exists."""


class AzureDnsResolver(pulumi.ComponentResource):
    inbound_ip: pulumi.Output[str]

    def __init__(self, name: str, args: AzureDnsResolverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:DnsResolver", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        resolver = azure.dnsresolver.DnsResolver(
            f"{name}-resolver",
            resource_group_name=args.resource_group_name,
            location=args.location,
            virtual_network=azure.dnsresolver.SubResourceArgs(id=args.vnet_id),
            opts=child,
        )
        endpoint = azure.dnsresolver.InboundEndpoint(
            f"{name}-inbound",
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_resolver_name=resolver.name,
            ip_configurations=[
                azure.dnsresolver.IpConfigurationArgs(
                    subnet=azure.dnsresolver.SubResourceArgs(id=args.inbound_subnet_id),
                    private_ip_address=args.inbound_ip,
                    private_ip_allocation_method=azure.dnsresolver.IpAllocationMethod.STATIC,
                )
            ],
            opts=child,
        )
        self.inbound_ip = endpoint.ip_configurations.apply(lambda configs: configs[0].private_ip_address or "")
        self.register_outputs({"inbound_ip": self.inbound_ip})
