"""Azure Database for PostgreSQL Flexible Server: a zone-redundant HA primary and a read replica per other region.

Private access only: every server lives in its region's delegated subnet with public network access disabled,
and names resolve through one private DNS zone linked to every VNet of the stack. The administrator password
comes from pulumi_random and is marked a secret output (the provider does not mark it by itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

from infra.azure.network import AzureRegionNetwork
from infra.config import DatabaseSettings
from infra.placement import DatabasePlacement


@dataclass(frozen=True)
class FlexibleServerDatabaseArgs:
    stack: str
    placement: DatabasePlacement
    settings: DatabaseSettings
    networks: Mapping[str, AzureRegionNetwork]
    """Region -> network; every Azure region of the stack (the zone is linked to all of them)."""
    password: pulumi.Input[str]
    journal_databases: Sequence[str] = ()
    """One journal database per cloud's controller pair (infra/rendered.py `journal_database`)."""


class FlexibleServerDatabase(pulumi.ComponentResource):
    hosts: Mapping[str, pulumi.Output[str]]
    """Database region -> fully qualified private name of the server there (the primary in its region)."""

    def __init__(self, name: str, args: FlexibleServerDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        primary_net = args.networks[args.placement.primary_region]
        zone = azure.privatedns.PrivateZone(
            f"{name}-dns",
            resource_group_name=primary_net.resource_group_name,
            location="global",
            private_zone_name=f"drainctl-{args.stack}.private.postgres.database.azure.com",
            opts=child,
        )
        links = [
            azure.privatedns.VirtualNetworkLink(
                f"{name}-dns-{region}",
                resource_group_name=primary_net.resource_group_name,
                private_zone_name=zone.name,
                location="global",
                registration_enabled=False,
                virtual_network=azure.privatedns.SubResourceArgs(id=network.vnet_id),
                opts=child,
            )
            for region, network in args.networks.items()
        ]
        after_links = pulumi.ResourceOptions(parent=self, depends_on=links)
        primary_region = args.placement.primary_region
        primary = azure.dbforpostgresql.Server(
            f"{name}-{primary_region}",
            resource_group_name=primary_net.resource_group_name,
            location=primary_region,
            version=str(args.settings.version),
            sku=_sku(args.settings),
            storage=azure.dbforpostgresql.StorageArgs(storage_size_gb=args.settings.storage_gb),
            network=_private(primary_net, zone.id),
            create_mode="Create",
            administrator_login=args.settings.user,
            administrator_login_password=args.password,
            high_availability=azure.dbforpostgresql.HighAvailabilityArgs(mode="ZoneRedundant"),
            backup=azure.dbforpostgresql.BackupArgs(backup_retention_days=14),
            tags=_TAGS,
            opts=pulumi.ResourceOptions.merge(
                after_links, pulumi.ResourceOptions(additional_secret_outputs=["administratorLoginPassword"])
            ),
        )
        azure.dbforpostgresql.Database(
            f"{name}-db",
            resource_group_name=primary_net.resource_group_name,
            server_name=primary.name,
            database_name=args.settings.name,
            charset="UTF8",
            opts=child,
        )
        for journal in args.journal_databases:
            azure.dbforpostgresql.Database(
                f"{name}-{journal.replace('_', '-')}",
                resource_group_name=primary_net.resource_group_name,
                server_name=primary.name,
                database_name=journal,
                charset="UTF8",
                opts=child,
            )
        hosts = {primary_region: primary.fully_qualified_domain_name}
        for region in args.placement.replica_regions:
            network = args.networks[region]
            replica = azure.dbforpostgresql.Server(
                f"{name}-{region}",
                resource_group_name=network.resource_group_name,
                location=region,
                version=str(args.settings.version),
                sku=_sku(args.settings),
                storage=azure.dbforpostgresql.StorageArgs(storage_size_gb=args.settings.storage_gb),
                network=_private(network, zone.id),
                create_mode="Replica",
                source_server_resource_id=primary.id,
                tags=_TAGS,
                opts=after_links,
            )
            hosts[region] = replica.fully_qualified_domain_name
        self.hosts = hosts
        self.register_outputs({"hosts": hosts})


_TAGS = {"drainctl-role": "database"}


def _sku(settings: DatabaseSettings) -> azure.dbforpostgresql.SkuArgs:
    return azure.dbforpostgresql.SkuArgs(name=settings.tier, tier=settings.azure_sku_tier)


def _private(network: AzureRegionNetwork, zone_id: pulumi.Input[str]) -> azure.dbforpostgresql.NetworkArgs:
    """In the region's delegated subnet, resolved through the stack's private zone, no public access."""
    return azure.dbforpostgresql.NetworkArgs(
        delegated_subnet_resource_id=network.database_subnet_id,
        private_dns_zone_arm_resource_id=zone_id,
        public_network_access="Disabled",
    )
