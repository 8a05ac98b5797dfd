"""The whole stack, built from one checked `StackConfig`: what `__main__.py` runs and the offline plan mocks.

Order: generated secrets; per cloud the identities and networks; the database (its hosts feed every boot
script); per region the API fleets; the GCP edge; the controller pairs. Every resource hangs off a component,
and every component gets its cloud's provider for its region explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native as azure
import pulumi_gcp as gcp

from infra import scripts
from infra.azure.controller import AzureControllerPair, AzureControllerPairArgs
from infra.azure.database import FlexibleServerDatabase, FlexibleServerDatabaseArgs
from infra.azure.fleet import AzureApiFleet, AzureApiFleetArgs
from infra.azure.identity import AzureIdentity, AzureIdentityArgs
from infra.azure.network import AzurePeering, AzurePeeringArgs, AzureRegionNetwork, AzureRegionNetworkArgs, carve
from infra.config import AzureSettings, GcpSettings, StackConfig
from infra.gcp.controller import GcpControllerPair, GcpControllerPairArgs
from infra.gcp.database import CloudSqlDatabase, CloudSqlDatabaseArgs
from infra.gcp.edge import GcpEdge, GcpEdgeArgs, GcpHealthChecks, GcpHealthChecksArgs
from infra.gcp.fleet import GcpApiFleet, GcpApiFleetArgs
from infra.gcp.identity import GcpIdentity, GcpIdentityArgs
from infra.gcp.network import GcpNetwork, GcpNetworkArgs
from infra.placement import DatabasePlacement, place_database
from infra.secrets import GeneratedSecrets


@dataclass
class StackOutputs:
    """What the stack exports: the routing table the app's per-region config consumes, and the entry points."""

    routing: dict[str, dict[str, pulumi.Output[str]]]
    """Region -> {"write_host": primary, "read_host": the replica serving that region}."""
    endpoints: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """`gcp` -> the global LB address; `azure/<region>` -> that region's LB address."""
    controllers: dict[str, list[pulumi.Output[str]]] = field(default_factory=dict)
    """Cloud -> private addresses of its controller VMs (active first)."""

    def export(self) -> None:
        pulumi.export("routing", self.routing)
        pulumi.export("endpoints", self.endpoints)
        pulumi.export("controllers", self.controllers)


@dataclass
class _Gcp:
    settings: GcpSettings
    hub: str
    providers: dict[str, gcp.Provider]
    identity: GcpIdentity
    network: GcpNetwork


@dataclass
class _Azure:
    settings: AzureSettings
    hub: str
    providers: dict[str, azure.Provider]
    networks: dict[str, AzureRegionNetwork]
    identity: AzureIdentity
    subscription_id: pulumi.Output[str]


def build(config: StackConfig) -> StackOutputs:
    placement = place_database(config)
    secrets = GeneratedSecrets("secrets")
    gcp_side = _gcp_foundation(config, placement, secrets) if config.gcp else None
    azure_side = _azure_foundation(config, placement, secrets) if config.azure else None
    hosts = _database(config, placement, secrets, gcp_side, azure_side)
    primary = hosts[placement.primary_region]
    outputs = StackOutputs(
        routing={
            region: {"write_host": primary, "read_host": hosts[source]}
            for region, source in placement.read_region.items()
        }
    )
    if gcp_side:
        _gcp_fleets(config, gcp_side, placement, hosts, outputs)
    if azure_side:
        _azure_fleets(config, azure_side, placement, hosts, outputs)
    return outputs


def _hub(config: StackConfig, cloud: str, placement: DatabasePlacement) -> str:
    """The cloud's home region: the database primary's if the database lives there, else its first region."""
    return placement.primary_region if placement.cloud == cloud else config.regions(cloud)[0]


def _gcp_foundation(config: StackConfig, placement: DatabasePlacement, secrets: GeneratedSecrets) -> _Gcp:
    assert config.gcp is not None
    settings = config.gcp
    providers = {
        region.name: gcp.Provider(f"gcp-{region.name}", project=settings.project, region=region.name)
        for region in settings.regions
    }
    hub = _hub(config, "gcp", placement)
    on_hub = pulumi.ResourceOptions(providers={"gcp": providers[hub]})
    identity = GcpIdentity("gcp-identity", GcpIdentityArgs(project=settings.project, secrets=secrets.named()), on_hub)
    network = GcpNetwork(
        "gcp-network",
        GcpNetworkArgs(
            app_port=config.app.app_port,
            agent_port=config.app.agent_port,
            fleet_email=identity.fleet_email,
            controller_email=identity.controller_email,
            private_services=placement.cloud == "gcp",
        ),
        on_hub,
    )
    return _Gcp(settings=settings, hub=hub, providers=providers, identity=identity, network=network)


def _azure_foundation(config: StackConfig, placement: DatabasePlacement, secrets: GeneratedSecrets) -> _Azure:
    assert config.azure is not None
    settings = config.azure
    providers = {
        region.name: azure.Provider(f"azure-{region.name}", location=region.name) for region in settings.regions
    }
    hub = _hub(config, "azure", placement)
    hub_region = next(region for region in settings.regions if region.name == hub)
    networks = {
        region.name: AzureRegionNetwork(
            f"azure-{region.name}",
            AzureRegionNetworkArgs(
                location=region.name,
                cidr=region.cidr,
                app_port=config.app.app_port,
                agent_port=config.app.agent_port,
                controller_cidr=carve(hub_region.cidr).controller,
                hub=region.name == hub,
            ),
            pulumi.ResourceOptions(providers={"azure-native": providers[region.name]}),
        )
        for region in settings.regions
    }
    on_hub = pulumi.ResourceOptions(providers={"azure-native": providers[hub]})
    spokes = {region: network for region, network in networks.items() if region != hub}
    if spokes:
        AzurePeering("azure-peering", AzurePeeringArgs(hub=networks[hub], spokes=spokes), on_hub)
    identity = AzureIdentity(
        "azure-identity",
        AzureIdentityArgs(
            stack=config.stack,
            location=hub,
            resource_group_name=networks[hub].resource_group_name,
            fleet_resource_group_ids=[network.resource_group_id for network in networks.values()],
            secrets=secrets.named(),
        ),
        on_hub,
    )
    client = azure.authorization.get_client_config_output(
        opts=pulumi.InvokeOutputOptions(provider=providers[hub])
    )
    return _Azure(
        settings=settings,
        hub=hub,
        providers=providers,
        networks=networks,
        identity=identity,
        subscription_id=client.subscription_id,
    )


def _database(
    config: StackConfig,
    placement: DatabasePlacement,
    secrets: GeneratedSecrets,
    gcp_side: _Gcp | None,
    azure_side: _Azure | None,
) -> Mapping[str, pulumi.Output[str]]:
    if placement.cloud == "gcp":
        assert gcp_side is not None
        return CloudSqlDatabase(
            "gcp-postgres",
            CloudSqlDatabaseArgs(
                placement=placement,
                settings=config.database,
                network_id=gcp_side.network.network_id,
                password=secrets.db_password,
                private_services=gcp_side.network.private_services,
            ),
            pulumi.ResourceOptions(providers={"gcp": gcp_side.providers[placement.primary_region]}),
        ).hosts
    assert azure_side is not None
    return FlexibleServerDatabase(
        "azure-postgres",
        FlexibleServerDatabaseArgs(
            stack=config.stack,
            placement=placement,
            settings=config.database,
            networks=azure_side.networks,
            password=secrets.db_password,
        ),
        pulumi.ResourceOptions(providers={"azure-native": azure_side.providers[placement.primary_region]}),
    ).hosts


def _gcp_fleets(
    config: StackConfig,
    side: _Gcp,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    outputs: StackOutputs,
) -> None:
    settings, identity = side.settings, side.identity
    on_hub = pulumi.ResourceOptions(providers={"gcp": side.providers[side.hub]})
    checks = GcpHealthChecks("gcp-health", GcpHealthChecksArgs(app_port=config.app.app_port), on_hub)
    secret_commands = pulumi.Output.all(*(identity.secret_ids[name] for name in _SECRET_ORDER)).apply(
        lambda ids: scripts.SecretCommands(*(scripts.gcp_secret(settings.project, secret_id) for secret_id in ids))
    )
    fleets = {}
    for region in settings.regions:
        fleets[region.name] = GcpApiFleet(
            f"gcp-{region.name}",
            GcpApiFleetArgs(
                region=region,
                image=settings.image,
                budget=config.budget,
                app=config.app,
                network_id=side.network.network_id,
                fleet_email=identity.fleet_email,
                liveness_check_id=checks.liveness_id,
                startup_script=_api_script(config, placement, hosts, region.name, secret_commands, platform="gcp"),
            ),
            pulumi.ResourceOptions(providers={"gcp": side.providers[region.name]}),
        )
    edge = GcpEdge(
        "gcp-edge",
        GcpEdgeArgs(
            domain=config.app.domain,
            budget=config.budget,
            websocket_lifetime_s=settings.websocket_lifetime_s,
            rate_limit=settings.socket_rate_limit,
            readiness_check_id=checks.readiness_id,
            instance_groups=[fleet.instance_group for fleet in fleets.values()],
        ),
        on_hub,
    )
    controllers = GcpControllerPair(
        "gcp-controller",
        GcpControllerPairArgs(
            region=side.hub,
            machine_type=settings.controller_machine_type,
            image=settings.image,
            subnet_id=fleets[side.hub].subnet_id,
            controller_email=identity.controller_email,
            startup_script=_controller_script(config, placement, hosts, secret_commands),
        ),
        pulumi.ResourceOptions(providers={"gcp": side.providers[side.hub]}),
    )
    outputs.endpoints["gcp"] = edge.address
    outputs.controllers["gcp"] = controllers.addresses


def _azure_fleets(
    config: StackConfig,
    side: _Azure,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    outputs: StackOutputs,
) -> None:
    settings, identity = side.settings, side.identity

    def commands(client_id: pulumi.Output[str]) -> pulumi.Output[scripts.SecretCommands]:
        return pulumi.Output.all(identity.vault_name, client_id).apply(
            lambda parts: scripts.SecretCommands(
                *(scripts.azure_secret(parts[0], name, parts[1]) for name in _SECRET_ORDER)
            )
        )

    fleet_commands = commands(identity.fleet_client_id)
    for region in settings.regions:
        network = side.networks[region.name]
        fleet = AzureApiFleet(
            f"azure-{region.name}",
            AzureApiFleetArgs(
                region=region,
                budget=config.budget,
                app=config.app,
                image=settings.image,
                admin_username=settings.admin_username,
                ssh_public_key=settings.ssh_public_key,
                subscription_id=side.subscription_id,
                resource_group_name=network.resource_group_name,
                app_subnet_id=network.app_subnet_id,
                fleet_identity_id=identity.fleet_identity_id,
                custom_data=_api_script(config, placement, hosts, region.name, fleet_commands, platform="azure").apply(
                    scripts.cloud_init
                ),
            ),
            pulumi.ResourceOptions(providers={"azure-native": side.providers[region.name]}),
        )
        outputs.endpoints[f"azure/{region.name}"] = fleet.public_ip
    hub = side.networks[side.hub]
    controllers = AzureControllerPair(
        "azure-controller",
        AzureControllerPairArgs(
            location=side.hub,
            vm_size=settings.controller_vm_size,
            image=settings.image,
            admin_username=settings.admin_username,
            ssh_public_key=settings.ssh_public_key,
            resource_group_name=hub.resource_group_name,
            subnet_id=hub.controller_subnet_id,
            identity_id=identity.controller_identity_id,
            custom_data=_controller_script(
                config, placement, hosts, commands(identity.controller_client_id)
            ).apply(scripts.cloud_init),
        ),
        pulumi.ResourceOptions(providers={"azure-native": side.providers[side.hub]}),
    )
    outputs.controllers["azure"] = controllers.addresses


_SECRET_ORDER = ("agent-token", "app-admin-token", "db-password")
"""The order of `scripts.SecretCommands`' fields."""


def _api_script(
    config: StackConfig,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    region: str,
    commands: pulumi.Output[scripts.SecretCommands],
    *,
    platform: str,
) -> pulumi.Output[str]:
    """`platform`: which notices the agent watches (`gcp`: GCE metadata; `azure`: IMDS scheduled events)."""
    write, read = hosts[placement.primary_region], hosts[placement.read_region[region]]
    return pulumi.Output.all(write, read, commands).apply(
        lambda parts: scripts.api_server_script(
            config.budget,
            config.app,
            config.database,
            scripts.DatabaseHosts(write_host=parts[0], read_host=parts[1]),
            parts[2],
            platform=platform,
        )
    )


def _controller_script(
    config: StackConfig,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    commands: pulumi.Output[scripts.SecretCommands],
) -> pulumi.Output[str]:
    return pulumi.Output.all(hosts[placement.primary_region], commands).apply(
        lambda parts: scripts.controller_script(
            config.budget, config.app, config.database, parts[0], config.controller.settings, parts[1]
        )
    )
