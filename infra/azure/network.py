"""One Azure region's network: resource group, VNet (app, database and controller subnets) and the app's NSG.

The NSG opens the app port to the internet (the Standard Load Balancer preserves client addresses) and the agent
port to the controller subnet only; an explicit deny follows, because Azure's default `AllowVnetInBound` rule
would otherwise let every peered VNet reach the agent.

The app and controller subnets carry a `Microsoft.KeyVault` service endpoint: the vault admits those subnets only
(network rules, default Deny). With a VPN to GCP the hub VNet also gets `GatewaySubnet` (the VPN gateway, the name
is required) and the DNS Private Resolver's inbound subnet (delegated to `Microsoft.Network/dnsResolvers`).
(https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub,
https://learn.microsoft.com/azure/dns/dns-private-resolver-overview#subnet-restrictions)

On-call's private path (docs/runbook.md) is an Azure Bastion in the hub: Standard SKU with native-client
tunneling (`az network bastion tunnel` to a controller VM's API port), in its own `AzureBastionSubnet` (the name is
required; /26 or larger) with a Standard static public IP. The controller subnet's NSG lets the Bastion subnet reach
the API port and nothing else there, and every app subnet's NSG refuses the Bastion subnet outright: the tunnel
reaches a controller's API and no other port of any VM. IP-based connection stays off (tunnels name a VM).
(https://learn.microsoft.com/azure/bastion/configuration-settings#subnet,
https://learn.microsoft.com/azure/bastion/connect-vm-native-client-linux#tunnel)

`AzurePeering` peers the hub VNet (the controllers' and the database primary's region) with every other region,
both directions, so the controllers reach every agent and replicas reach their primary on private addresses.
With a VPN gateway in the hub, the hub side allows gateway transit and the spokes use the remote gateway, so
GCP reaches every spoke (its replica) over the one VPN and the gateway advertises the spokes' ranges over BGP.
(https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-peering-gateway-transit)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

from infra.config import DEFAULT_API_PORT

POSTGRES_DELEGATION = "Microsoft.DBforPostgreSQL/flexibleServers"
RESOLVER_DELEGATION = "Microsoft.Network/dnsResolvers"
KEY_VAULT_ENDPOINT = "Microsoft.KeyVault"
GATEWAY_SUBNET = "GatewaySubnet"
BASTION_SUBNET = "AzureBastionSubnet"
BASTION_PREFIX = 26
"""Azure Bastion's smallest subnet (Standard SKU)."""
NSG_APP_PRIORITY, NSG_CONTROLLER_PRIORITY, NSG_DENY_AGENT_PRIORITY = 200, 300, 400
NSG_DENY_BASTION_PRIORITY = 350
NSG_BASTION_API_PRIORITY, NSG_BASTION_DENY_PRIORITY = 200, 300


@dataclass(frozen=True)
class RegionSubnets:
    """A region's VNet carved into /(prefix+4) subnets: app, database (delegated), controller, and (hub with a
    VPN) the gateway subnet and the resolver's inbound subnet. Fixed positions: ranges never move."""

    app: str
    database: str
    controller: str
    gateway: str
    resolver_inbound: str
    bastion: str
    """`AzureBastionSubnet` (hub only): the first /26 past the subnets above."""

    @property
    def resolver_inbound_ip(self) -> str:
        """The inbound endpoint's pinned address: the first usable one (Azure reserves .0-.3 of a subnet)."""
        return str(ipaddress.IPv4Network(self.resolver_inbound)[4])


def carve(cidr: ipaddress.IPv4Network) -> RegionSubnets:
    app, database, controller, gateway, resolver_inbound, *_ = cidr.subnets(prefixlen_diff=4)
    taken = (app, database, controller, gateway, resolver_inbound)
    bastion = next(
        block for block in cidr.subnets(new_prefix=max(BASTION_PREFIX, cidr.prefixlen))
        if not any(block.overlaps(used) for used in taken)
    )
    return RegionSubnets(
        app=str(app),
        database=str(database),
        controller=str(controller),
        gateway=str(gateway),
        resolver_inbound=str(resolver_inbound),
        bastion=str(bastion),
    )


@dataclass(frozen=True)
class AzureRegionNetworkArgs:
    location: str
    cidr: ipaddress.IPv4Network
    app_port: int
    agent_port: int
    tls_port: int
    controller_cidr: str
    """The controller subnet (in the hub region): the only source allowed to reach the agent port."""
    hub: bool
    """The hub hosts the controller VMs: their subnet gets a NAT gateway for egress (package installs)."""
    vpn: bool = False
    """The hub terminates the VPN to GCP: add GatewaySubnet and the DNS resolver's inbound subnet."""
    api_port: int = DEFAULT_API_PORT
    """The controllers' API port: the only port the hub's Bastion may reach (on the controller subnet)."""
    bastion_cidr: str | None = None
    """The hub's `AzureBastionSubnet`: every app subnet's NSG refuses it (the Bastion reaches controllers only)."""


class AzureRegionNetwork(pulumi.ComponentResource):
    resource_group_name: pulumi.Output[str]
    resource_group_id: pulumi.Output[str]
    vnet_id: pulumi.Output[str]
    vnet_name: pulumi.Output[str]
    app_subnet_id: pulumi.Output[str]
    database_subnet_id: pulumi.Output[str]
    controller_subnet_id: pulumi.Output[str]
    gateway_subnet_id: pulumi.Output[str]
    resolver_inbound_subnet_id: pulumi.Output[str]
    subnets: RegionSubnets
    bastion: azure.network.BastionHost | None
    """The hub's Bastion (on-call's tunnels to the controllers' API); None elsewhere."""

    def __init__(self, name: str, args: AzureRegionNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = azure.resources.ResourceGroup(f"{name}-rg", location=args.location, opts=child)
        nsg = azure.network.NetworkSecurityGroup(
            f"{name}-app-nsg",
            resource_group_name=group.name,
            location=args.location,
            security_rules=_app_rules(args),
            opts=child,
        )
        subnets = carve(args.cidr)
        controller_egress = self._nat_gateway(name, args, group.name) if args.hub else None
        controller_nsg = self._controller_nsg(name, args, group.name, subnets) if args.hub else None
        bastion_subnets = (
            [azure.network.SubnetArgs(name=BASTION_SUBNET, address_prefix=subnets.bastion)] if args.hub else []
        )
        vault_endpoint = [azure.network.ServiceEndpointPropertiesFormatArgs(service=KEY_VAULT_ENDPOINT)]
        vpn_subnets = (
            [
                azure.network.SubnetArgs(name=GATEWAY_SUBNET, address_prefix=subnets.gateway),
                azure.network.SubnetArgs(
                    name="resolver-inbound",
                    address_prefix=subnets.resolver_inbound,
                    delegations=[azure.network.DelegationArgs(name="resolver", service_name=RESOLVER_DELEGATION)],
                ),
            ]
            if args.vpn
            else []
        )
        vnet = azure.network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=group.name,
            location=args.location,
            address_space=azure.network.AddressSpaceArgs(address_prefixes=[str(args.cidr)]),
            subnets=[
                azure.network.SubnetArgs(
                    name="app",
                    address_prefix=subnets.app,
                    network_security_group=azure.network.NetworkSecurityGroupArgs(id=nsg.id),
                    service_endpoints=vault_endpoint,
                ),
                azure.network.SubnetArgs(
                    name="database",
                    address_prefix=subnets.database,
                    delegations=[azure.network.DelegationArgs(name="postgres", service_name=POSTGRES_DELEGATION)],
                ),
                azure.network.SubnetArgs(
                    name="controller",
                    address_prefix=subnets.controller,
                    nat_gateway=controller_egress,
                    network_security_group=controller_nsg,
                    service_endpoints=vault_endpoint,
                ),
                *vpn_subnets,
                *bastion_subnets,
            ],
            opts=child,
        )
        self.resource_group_name = group.name
        self.resource_group_id = group.id
        self.vnet_id = vnet.id
        self.vnet_name = vnet.name
        self.app_subnet_id = vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/app")
        self.database_subnet_id = vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/database")
        self.controller_subnet_id = vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/controller")
        self.gateway_subnet_id = vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/{GATEWAY_SUBNET}")
        self.resolver_inbound_subnet_id = vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/resolver-inbound")
        self.subnets = subnets
        self.bastion = self._bastion(name, args, group.name, vnet) if args.hub else None
        self.register_outputs(
            {
                "resource_group_name": self.resource_group_name,
                "vnet_id": self.vnet_id,
                "app_subnet_id": self.app_subnet_id,
                "database_subnet_id": self.database_subnet_id,
            }
        )


    def _controller_nsg(
        self, name: str, args: AzureRegionNetworkArgs, group: pulumi.Input[str], subnets: RegionSubnets
    ) -> azure.network.NetworkSecurityGroupArgs:
        nsg = azure.network.NetworkSecurityGroup(
            f"{name}-controller-nsg",
            resource_group_name=group,
            location=args.location,
            security_rules=_controller_rules(args.api_port, subnets.bastion),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return azure.network.NetworkSecurityGroupArgs(id=nsg.id)

    def _bastion(
        self, name: str, args: AzureRegionNetworkArgs, group: pulumi.Input[str], vnet: azure.network.VirtualNetwork
    ) -> azure.network.BastionHost:
        child = pulumi.ResourceOptions(parent=self)
        address = azure.network.PublicIPAddress(
            f"{name}-bastion-ip",
            resource_group_name=group,
            location=args.location,
            sku=azure.network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static",
            opts=child,
        )
        return azure.network.BastionHost(
            f"{name}-bastion",
            resource_group_name=group,
            location=args.location,
            sku=azure.network.SkuArgs(name="Standard"),
            enable_tunneling=True,
            enable_ip_connect=False,
            enable_shareable_link=False,
            enable_file_copy=False,
            ip_configurations=[
                azure.network.BastionHostIPConfigurationArgs(
                    name="bastion",
                    subnet=azure.network.SubResourceArgs(
                        id=vnet.id.apply(lambda vnet_id: f"{vnet_id}/subnets/{BASTION_SUBNET}")
                    ),
                    public_ip_address=azure.network.SubResourceArgs(id=address.id),
                )
            ],
            opts=child,
        )

    def _nat_gateway(
        self, name: str, args: AzureRegionNetworkArgs, group: pulumi.Input[str]
    ) -> azure.network.SubResourceArgs:
        child = pulumi.ResourceOptions(parent=self)
        address = azure.network.PublicIPAddress(
            f"{name}-egress-ip",
            resource_group_name=group,
            location=args.location,
            sku=azure.network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static",
            opts=child,
        )
        gateway = azure.network.NatGateway(
            f"{name}-egress",
            resource_group_name=group,
            location=args.location,
            sku=azure.network.NatGatewaySkuArgs(name="Standard"),
            public_ip_addresses=[azure.network.SubResourceArgs(id=address.id)],
            opts=child,
        )
        return azure.network.SubResourceArgs(id=gateway.id)


def _app_rules(args: AzureRegionNetworkArgs) -> list[azure.network.SecurityRuleArgs]:
    def rule(name: str, priority: int, access: str, source: str, port: int) -> azure.network.SecurityRuleArgs:
        return azure.network.SecurityRuleArgs(
            name=name,
            priority=priority,
            direction="Inbound",
            access=access,
            protocol="Tcp",
            source_address_prefix=source,
            source_port_range="*",
            destination_address_prefix="*",
            destination_port_range=str(port),
        )

    return [
        # Clients reach the TLS port only; the plain app port answers the LB's probes (AzureLoadBalancer tag,
        # allowed by Azure's default AllowAzureLoadBalancerInBound rule) and the VM's own TLS proxy.
        rule("allow-tls-from-internet", NSG_APP_PRIORITY, "Allow", "Internet", args.tls_port),
        rule("allow-controller-to-agent", NSG_CONTROLLER_PRIORITY, "Allow", args.controller_cidr, args.agent_port),
        rule("deny-agent-port", NSG_DENY_AGENT_PRIORITY, "Deny", "*", args.agent_port),
        *([_deny_all("deny-bastion", NSG_DENY_BASTION_PRIORITY, args.bastion_cidr)] if args.bastion_cidr else []),
    ]


def _controller_rules(api_port: int, bastion_cidr: str) -> list[azure.network.SecurityRuleArgs]:
    """The Bastion subnet reaches the controllers' API port, and nothing else on the controller subnet."""
    return [
        azure.network.SecurityRuleArgs(
            name="allow-bastion-to-api",
            priority=NSG_BASTION_API_PRIORITY,
            direction="Inbound",
            access="Allow",
            protocol="Tcp",
            source_address_prefix=bastion_cidr,
            source_port_range="*",
            destination_address_prefix="*",
            destination_port_range=str(api_port),
        ),
        _deny_all("deny-bastion-elsewhere", NSG_BASTION_DENY_PRIORITY, bastion_cidr),
    ]


def _deny_all(name: str, priority: int, source: str) -> azure.network.SecurityRuleArgs:
    return azure.network.SecurityRuleArgs(
        name=name,
        priority=priority,
        direction="Inbound",
        access="Deny",
        protocol="*",
        source_address_prefix=source,
        source_port_range="*",
        destination_address_prefix="*",
        destination_port_range="*",
    )


@dataclass(frozen=True)
class AzurePeeringArgs:
    hub: AzureRegionNetwork
    spokes: Mapping[str, AzureRegionNetwork]
    """Region name -> that region's network."""
    gateway: pulumi.Resource | None = None
    """The hub's VPN gateway, if any: the hub offers gateway transit and the spokes use it (after it exists)."""


class AzurePeering(pulumi.ComponentResource):
    """Hub-and-spoke VNet peering, both directions per spoke."""

    def __init__(self, name: str, args: AzurePeeringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:Peering", name, None, opts)
        transit = args.gateway is not None
        for region, spoke in args.spokes.items():
            hub_side: pulumi.Resource | None = None
            for direction, local, remote in (("to", args.hub, spoke), ("from", spoke, args.hub)):
                # A spoke may use the remote gateway only once the hub's side offers gateway transit.
                after = [*([args.gateway] if args.gateway else []), *([hub_side] if hub_side else [])]
                hub_side = azure.network.VirtualNetworkPeering(
                    f"{name}-{direction}-{region}",
                    resource_group_name=local.resource_group_name,
                    virtual_network_name=local.vnet_name,
                    remote_virtual_network=azure.network.SubResourceArgs(id=remote.vnet_id),
                    allow_virtual_network_access=True,
                    # Traffic from GCP arrives through the hub's gateway: forwarded, from the spoke's view.
                    allow_forwarded_traffic=transit,
                    allow_gateway_transit=transit and direction == "to",
                    use_remote_gateways=transit and direction == "from",
                    opts=pulumi.ResourceOptions(parent=self, depends_on=after),
                )
        self.register_outputs({"spokes": sorted(args.spokes)})
