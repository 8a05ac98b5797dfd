"""One Azure region's network: resource group, VNet (app, database and controller subnets) and the app's NSG.

The NSG opens the app port to the internet (the Standard Load Balancer preserves client addresses) and the agent
port to the controller subnet only; an explicit deny follows, because Azure's default `AllowVnetInBound` rule
would otherwise let every peered VNet reach the agent.

`AzurePeering` peers the hub VNet (the controllers' and the database primary's region) with every other region,
both directions, so the controllers reach every agent and replicas reach their primary on private addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

POSTGRES_DELEGATION = "Microsoft.DBforPostgreSQL/flexibleServers"
NSG_APP_PRIORITY, NSG_CONTROLLER_PRIORITY, NSG_DENY_AGENT_PRIORITY = 200, 300, 400


@dataclass(frozen=True)
class RegionSubnets:
    """A region's VNet carved into /(prefix+4) subnets: app, database (delegated), controller."""

    app: str
    database: str
    controller: str


def carve(cidr: ipaddress.IPv4Network) -> RegionSubnets:
    app, database, controller, *_ = cidr.subnets(prefixlen_diff=4)
    return RegionSubnets(app=str(app), database=str(database), controller=str(controller))


@dataclass(frozen=True)
class AzureRegionNetworkArgs:
    location: str
    cidr: ipaddress.IPv4Network
    app_port: int
    agent_port: int
    controller_cidr: str
    """The controller subnet (in the hub region): the only source allowed to reach the agent port."""
    hub: bool
    """The hub hosts the controller VMs: their subnet gets a NAT gateway for egress (package installs)."""


class AzureRegionNetwork(pulumi.ComponentResource):
    resource_group_name: pulumi.Output[str]
    resource_group_id: pulumi.Output[str]
    vnet_id: pulumi.Output[str]
    vnet_name: pulumi.Output[str]
    app_subnet_id: pulumi.Output[str]
    database_subnet_id: pulumi.Output[str]
    controller_subnet_id: pulumi.Output[str]

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
                ),
                azure.network.SubnetArgs(
                    name="database",
                    address_prefix=subnets.database,
                    delegations=[azure.network.DelegationArgs(name="postgres", service_name=POSTGRES_DELEGATION)],
                ),
                azure.network.SubnetArgs(
                    name="controller", address_prefix=subnets.controller, nat_gateway=controller_egress
                ),
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
        self.register_outputs(
            {
                "resource_group_name": self.resource_group_name,
                "vnet_id": self.vnet_id,
                "app_subnet_id": self.app_subnet_id,
                "database_subnet_id": self.database_subnet_id,
            }
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
        rule("allow-app-from-internet", NSG_APP_PRIORITY, "Allow", "Internet", args.app_port),
        rule("allow-controller-to-agent", NSG_CONTROLLER_PRIORITY, "Allow", args.controller_cidr, args.agent_port),
        rule("deny-agent-port", NSG_DENY_AGENT_PRIORITY, "Deny", "*", args.agent_port),
    ]


@dataclass(frozen=True)
class AzurePeeringArgs:
    hub: AzureRegionNetwork
    spokes: Mapping[str, AzureRegionNetwork]
    """Region name -> that region's network."""


class AzurePeering(pulumi.ComponentResource):
    """Hub-and-spoke VNet peering, both directions per spoke."""

    def __init__(self, name: str, args: AzurePeeringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:Peering", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for region, spoke in args.spokes.items():
            for direction, local, remote in (("to", args.hub, spoke), ("from", spoke, args.hub)):
                azure.network.VirtualNetworkPeering(
                    f"{name}-{direction}-{region}",
                    resource_group_name=local.resource_group_name,
                    virtual_network_name=local.vnet_name,
                    remote_virtual_network=azure.network.SubResourceArgs(id=remote.vnet_id),
                    allow_virtual_network_access=True,
                    allow_forwarded_traffic=False,
                    opts=child,
                )
        self.register_outputs({"spokes": sorted(args.spokes)})
