"""Cloud SQL for PostgreSQL: a regional (HA) primary and a read replica in every other GCP region of the stack.

Edition: Postgres 16 and later default to ENTERPRISE_PLUS, which takes only `db-perf-optimized-N-*` tiers, so
the edition is derived from the tier and set on every instance (replicas do not inherit it): `db-custom-*` and
shared-core tiers -> ENTERPRISE. Source: pulumi_gcp `DatabaseInstanceSettingsArgs.edition` ("`db-custom-*` require
`edition = "ENTERPRISE"`"), https://cloud.google.com/sql/docs/postgres/editions-intro.

Private IP only (`ipv4Enabled: false` on the VPC's private services range): no instance has a public address.
The application user's password comes from pulumi_random and stays a secret (sql.User marks it secret too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import DatabaseSettings
from infra.placement import DatabasePlacement

ENTERPRISE_PLUS_TIER_PREFIX = "db-perf-optimized-"


def edition_for(tier: str) -> str:
    """The Cloud SQL edition a tier belongs to: ENTERPRISE_PLUS takes only `db-perf-optimized-N-*` tiers."""
    return "ENTERPRISE_PLUS" if tier.startswith(ENTERPRISE_PLUS_TIER_PREFIX) else "ENTERPRISE"


@dataclass(frozen=True)
class CloudSqlDatabaseArgs:
    placement: DatabasePlacement
    settings: DatabaseSettings
    network_id: pulumi.Input[str]
    password: pulumi.Input[str]
    private_services: pulumi.Resource | None
    """The VPC peering for private IP; instances wait for it."""
    journal_databases: Sequence[str] = ()
    """One journal database per cloud's controller pair (infra/rendered.py `journal_database`)."""


class CloudSqlDatabase(pulumi.ComponentResource):
    hosts: Mapping[str, pulumi.Output[str]]
    """Database region -> private address of the instance there (the primary in its region)."""

    def __init__(self, name: str, args: CloudSqlDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:Database", name, None, opts)
        depends = [args.private_services] if args.private_services else []
        child = pulumi.ResourceOptions(parent=self, depends_on=depends)
        primary_region = args.placement.primary_region
        primary = gcp.sql.DatabaseInstance(
            f"{name}-{primary_region}",
            region=primary_region,
            database_version=f"POSTGRES_{args.settings.version}",
            deletion_protection=True,
            settings=self._settings(args, availability="REGIONAL", backups=True),
            opts=child,
        )
        hosts = {primary_region: primary.private_ip_address}
        for region in args.placement.replica_regions:
            replica = gcp.sql.DatabaseInstance(
                f"{name}-{region}",
                region=region,
                database_version=f"POSTGRES_{args.settings.version}",
                master_instance_name=primary.name,
                replica_configuration=gcp.sql.DatabaseInstanceReplicaConfigurationArgs(failover_target=False),
                deletion_protection=True,
                settings=self._settings(args, availability="ZONAL", backups=False),
                opts=child,
            )
            hosts[region] = replica.private_ip_address
        gcp.sql.Database(f"{name}-db", instance=primary.name, name=args.settings.name, opts=child)
        for journal in args.journal_databases:
            gcp.sql.Database(f"{name}-{journal.replace('_', '-')}", instance=primary.name, name=journal, opts=child)
        gcp.sql.User(
            f"{name}-user", instance=primary.name, name=args.settings.user, password=args.password, opts=child
        )
        self.hosts = hosts
        self.register_outputs({"hosts": hosts})

    @staticmethod
    def _settings(
        args: CloudSqlDatabaseArgs, *, availability: str, backups: bool
    ) -> gcp.sql.DatabaseInstanceSettingsArgs:
        return gcp.sql.DatabaseInstanceSettingsArgs(
            tier=args.settings.tier,
            edition=edition_for(args.settings.tier),
            availability_type=availability,
            disk_size=args.settings.storage_gb,
            ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                ipv4_enabled=False, private_network=args.network_id, ssl_mode="ENCRYPTED_ONLY"
            ),
            backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                enabled=backups, point_in_time_recovery_enabled=backups
            ),
            user_labels={"drainctl-role": "database"},
        )
