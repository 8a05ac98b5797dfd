"""The whole stack, built from one checked `StackConfig`: what `__main__.py` runs and the offline plan mocks.

Order: generated secrets; per cloud the identities and networks; the private path between the clouds when
anything reads across them (infra/interconnect.py), then the Azure peering (which uses the hub's VPN gateway);
the database (its hosts feed every boot script); per region the API fleets; the GCP edge; the controller pairs.
Every resource hangs off a component, and every component gets its cloud's provider for its region explicitly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_gcp as gcp
import pulumi_random as random

from infra import artifacts, interconnect, rendered, scripts
from infra.azure.artifacts import AzureArtifactStore, AzureArtifactStoreArgs
from infra.azure.controller import AzureControllerPair, AzureControllerPairArgs
from infra.azure.database import FlexibleServerDatabase, FlexibleServerDatabaseArgs
from infra.azure.fleet import AzureApiFleet, AzureApiFleetArgs
from infra.azure.identity import TLS_SECRET, AzureIdentity, AzureIdentityArgs
from infra.azure.network import AzurePeering, AzurePeeringArgs, AzureRegionNetwork, AzureRegionNetworkArgs, carve
from infra.azure.vpn import (
    AzureDnsResolver,
    AzureDnsResolverArgs,
    AzureVpnGateway,
    AzureVpnGatewayArgs,
    AzureVpnLinks,
    AzureVpnLinksArgs,
)
from infra.config import AzureSettings, GcpSettings, StackConfig
from infra.gcp.artifacts import GcpArtifactStore, GcpArtifactStoreArgs
from infra.gcp.controller import GcpControllerPair, GcpControllerPairArgs
from infra.gcp.database import CloudSqlDatabase, CloudSqlDatabaseArgs
from infra.gcp.edge import GcpEdge, GcpEdgeArgs, GcpHealthChecks, GcpHealthChecksArgs
from infra.gcp.fleet import GcpApiFleet, GcpApiFleetArgs
from infra.gcp.identity import GcpIdentity, GcpIdentityArgs
from infra.gcp.network import IAP_TCP_RANGE, GcpNetwork, GcpNetworkArgs
from infra.gcp.vpn import DnsForwarding, GcpVpn, GcpVpnArgs
from infra.oncall import api_port
from infra.placement import DatabasePlacement, place_database
from infra.secrets import GeneratedSecrets


@dataclass
class StackOutputs:
    """What the stack exports: the routing table the app's per-region config consumes, and the entry points."""

    routing: dict[str, dict[str, pulumi.Input[str]]]
    """Region -> {"write_host": primary, "read_host": the replica serving that region, "read_path": how the
    region's reads get there (same network, VNet peering, HA VPN; infra/interconnect.py)}."""
    endpoints: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    """`gcp` -> the global LB address; `azure/<region>` -> that region's LB address."""
    controllers: dict[str, list[pulumi.Output[str]]] = field(default_factory=dict)
    """Cloud -> private addresses of its controller VMs (active first)."""
    access: dict[str, dict[str, pulumi.Input[Any]]] = field(default_factory=dict)
    """Cloud -> on-call's private path to its controllers' API (docs/runbook.md): IAP or the Bastion's name."""

    def export(self) -> None:
        pulumi.export("routing", self.routing)
        pulumi.export("endpoints", self.endpoints)
        pulumi.export("controllers", self.controllers)
        pulumi.export("access", self.access)


@dataclass
class _Gcp:
    settings: GcpSettings
    hub: str
    providers: dict[str, gcp.Provider]
    identity: GcpIdentity
    network: GcpNetwork
    store: GcpArtifactStore | None = None


@dataclass
class _Azure:
    settings: AzureSettings
    hub: str
    providers: dict[str, azure.Provider]
    networks: dict[str, AzureRegionNetwork]
    identity: AzureIdentity
    subscription_id: pulumi.Output[str]
    store: AzureArtifactStore | None = None


def build(config: StackConfig) -> StackOutputs:
    placement = place_database(config)
    shipped = artifacts.load(config.app.server)  # first: a missing `make dist` stops the program before anything
    secrets = GeneratedSecrets("secrets")
    vpn = interconnect.needs_vpn(config)
    gcp_side = _gcp_foundation(config, placement, secrets) if config.gcp else None
    azure_side = _azure_foundation(config, placement, secrets, vpn=vpn) if config.azure else None
    gateway = _interconnect(placement, gcp_side, azure_side) if gcp_side and azure_side and vpn else None
    if azure_side:
        _azure_peering(azure_side, gateway)
        azure_side.store = _azure_store(config, azure_side, shipped)
    if gcp_side:
        gcp_side.store = _gcp_store(gcp_side, shipped)
    hosts = _database(config, placement, secrets, gcp_side, azure_side)
    primary = hosts[placement.primary_region]
    paths = interconnect.read_paths(config, placement, azure_side.hub if azure_side else None)
    outputs = StackOutputs(
        routing={
            region: {"write_host": primary, "read_host": hosts[source], "read_path": paths[region]}
            for region, source in placement.read_region.items()
        }
    )
    outputs.access = _access(config, gcp_side, azure_side)
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
            private_services_cidr=settings.private_services_cidr if placement.cloud == "gcp" else None,
            api_port=api_port(config),
        ),
        on_hub,
    )
    return _Gcp(settings=settings, hub=hub, providers=providers, identity=identity, network=network)


def _azure_foundation(
    config: StackConfig, placement: DatabasePlacement, secrets: GeneratedSecrets, *, vpn: bool
) -> _Azure:
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
                tls_port=config.app.tls_port,
                controller_cidr=carve(hub_region.cidr).controller,
                hub=region.name == hub,
                vpn=vpn and region.name == hub,
                api_port=api_port(config),
                bastion_cidr=carve(hub_region.cidr).bastion,
            ),
            pulumi.ResourceOptions(providers={"azure-native": providers[region.name]}),
        )
        for region in settings.regions
    }
    on_hub = pulumi.ResourceOptions(providers={"azure-native": providers[hub]})
    identity = AzureIdentity(
        "azure-identity",
        AzureIdentityArgs(
            stack=config.stack,
            location=hub,
            resource_group_name=networks[hub].resource_group_name,
            fleet_resource_group_ids=[network.resource_group_id for network in networks.values()],
            secrets=secrets.named(),
            reader_subnet_ids=[
                *(network.app_subnet_id for network in networks.values()),
                networks[hub].controller_subnet_id,
            ],
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


def _access(config: StackConfig, gcp_side: _Gcp | None, azure_side: _Azure | None) -> dict[str, dict[str, Any]]:
    """The `access` export: how on-call reaches each cloud's controllers' API port (docs/runbook.md)."""
    access: dict[str, dict[str, Any]] = {}
    if gcp_side:
        access["gcp"] = {"path": "iap", "project": gcp_side.settings.project, "source_range": IAP_TCP_RANGE,
                         "api_port": api_port(config)}
    if azure_side:
        hub = azure_side.networks[azure_side.hub]
        assert hub.bastion is not None  # the hub network always has one
        access["azure"] = {"path": "bastion", "bastion": hub.bastion.name,
                           "resource_group": hub.resource_group_name, "api_port": api_port(config)}
    return access


def _azure_peering(side: _Azure, gateway: AzureVpnGateway | None) -> None:
    hub = side.networks[side.hub]
    spokes = {region: network for region, network in side.networks.items() if region != side.hub}
    if spokes:
        AzurePeering(
            "azure-peering",
            AzurePeeringArgs(hub=hub, spokes=spokes, gateway=gateway.gateway if gateway else None),
            pulumi.ResourceOptions(providers={"azure-native": side.providers[side.hub]}),
        )


AZURE_POSTGRES_ZONE = "postgres.database.azure.com."
"""Flexible servers' public names CNAME into the stack's private zone; GCP forwards the whole suffix to Azure."""


def _interconnect(placement: DatabasePlacement, gcp_side: _Gcp, azure_side: _Azure) -> AzureVpnGateway:
    """HA VPN + Cloud Router (GCP hub) <-> active-active VPN gateway (Azure hub), and DNS forwarding GCP -> Azure
    when the database is on Azure. (With the database on GCP, Azure reads Cloud SQL by address: no names.)"""
    azure_hub = azure_side.networks[azure_side.hub]
    on_azure = pulumi.ResourceOptions(providers={"azure-native": azure_side.providers[azure_side.hub]})
    on_gcp = pulumi.ResourceOptions(providers={"gcp": gcp_side.providers[gcp_side.hub]})
    keys = [
        random.RandomPassword(
            f"vpn-key-{tunnel.index}", length=48, special=False, opts=pulumi.ResourceOptions(
                additional_secret_outputs=["result"]
            )
        ).result
        for tunnel in interconnect.tunnels()
    ]
    gateway = AzureVpnGateway(
        "azure-vpn",
        AzureVpnGatewayArgs(
            location=azure_side.hub,
            resource_group_name=azure_hub.resource_group_name,
            gateway_subnet_id=azure_hub.gateway_subnet_id,
            subscription_id=azure_side.subscription_id,
        ),
        on_azure,
    )
    dns = None
    advertised = []
    if placement.cloud == "azure":
        resolver = AzureDnsResolver(
            "azure-dns",
            AzureDnsResolverArgs(
                location=azure_side.hub,
                resource_group_name=azure_hub.resource_group_name,
                vnet_id=azure_hub.vnet_id,
                inbound_subnet_id=azure_hub.resolver_inbound_subnet_id,
                inbound_ip=azure_hub.subnets.resolver_inbound_ip,
            ),
            on_azure,
        )
        dns = DnsForwarding(dns_name=AZURE_POSTGRES_ZONE, target_ip=resolver.inbound_ip)
        advertised.append(interconnect.CLOUD_DNS_FORWARDER_RANGE)
    else:
        advertised.append(str(gcp_side.settings.private_services_cidr))
    vpn = GcpVpn(
        "gcp-vpn",
        GcpVpnArgs(
            region=gcp_side.hub,
            network_id=gcp_side.network.network_id,
            network_name=gcp_side.network.network_name,
            azure_gateway_ips=gateway.public_ips,
            shared_keys=keys,
            advertised_ranges=advertised,
            private_services_peering=gcp_side.network.private_services_peering,
            dns=dns,
        ),
        on_gcp,
    )
    AzureVpnLinks(
        "azure-vpn-links",
        AzureVpnLinksArgs(
            location=azure_side.hub,
            resource_group_name=azure_hub.resource_group_name,
            gateway=gateway,
            gcp_interface_ips=vpn.interface_ips,
            shared_keys=keys,
        ),
        on_azure,
    )
    return gateway


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
                journal_databases=_journal_databases(config),
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
            journal_databases=_journal_databases(config),
        ),
        pulumi.ResourceOptions(providers={"azure-native": azure_side.providers[placement.primary_region]}),
    ).hosts


def _journal_databases(config: StackConfig) -> list[str]:
    """Each cloud's controller pair keeps its own journal (infra/rendered.py `journal_database`)."""
    return [rendered.journal_database(config, cloud) for cloud in ("gcp", "azure") if getattr(config, cloud)]


def _gcp_fleets(
    config: StackConfig,
    side: _Gcp,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    outputs: StackOutputs,
) -> None:
    settings, identity = side.settings, side.identity
    on_hub = pulumi.ResourceOptions(providers={"gcp": side.providers[side.hub]})
    hub_region = next(region for region in settings.regions if region.name == side.hub)
    addresses = rendered.gcp_controller_addresses(hub_region.cidr)
    agent = rendered.agent_config(
        config, platform="gcp", controllers=[rendered.api_url(a, config.controller.api_port) for a in addresses]
    )
    checks = GcpHealthChecks(
        "gcp-health", GcpHealthChecksArgs(app_port=config.app.app_port, budget=config.budget), on_hub
    )
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
                startup_script=_api_script(
                    config, placement, hosts, region.name, secret_commands, platform="gcp", agent=agent,
                    install=_gcp_install(side, extras=""),
                ),
                depends_on=[*_uploads(side), *identity.reads["fleet"]],
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
    targets = pulumi.Output.all(edge.backend_name, *(fleet.group_name for fleet in fleets.values())).apply(
        lambda names: rendered.GcpTargets(
            project=settings.project, groups=tuple(zip(fleets, (str(n) for n in names[1:]), strict=True)),
            backend_services=(str(names[0]),),
        )
    )
    controllers = GcpControllerPair(
        "gcp-controller",
        GcpControllerPairArgs(
            region=side.hub,
            zones=hub_region.zone_names,
            machine_type=settings.controller_machine_type,
            image=settings.image,
            subnet_id=fleets[side.hub].subnet_id,
            controller_email=identity.controller_email,
            addresses=addresses,
            startup_scripts=[
                _controller_script(
                    config, placement, hosts, secret_commands, address, targets,
                    install=_gcp_install(side, extras="postgres,gcp"),
                )
                for address in addresses
            ],
            depends_on=[*_uploads(side), *identity.reads["controller"]],
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
    hub_region = next(region for region in settings.regions if region.name == side.hub)
    addresses = rendered.azure_controller_addresses(ipaddress.IPv4Network(carve(hub_region.cidr).controller))
    agent = rendered.agent_config(
        config, platform="azure", controllers=[rendered.api_url(a, config.controller.api_port) for a in addresses]
    )
    scale_sets: list[pulumi.Output[tuple[str, str]]] = []
    tls_command = pulumi.Output.all(identity.vault_name, identity.fleet_client_id).apply(
        lambda parts: scripts.azure_secret(parts[0], TLS_SECRET, parts[1])
    )
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
                custom_data=_api_script(
                    config, placement, hosts, region.name, fleet_commands, platform="azure", agent=agent,
                    tls=tls_command, install=_azure_install(side, identity.fleet_client_id, extras=""),
                ).apply(scripts.cloud_init),
                depends_on=[*_uploads(side), *identity.reads["fleet"]],
            ),
            pulumi.ResourceOptions(providers={"azure-native": side.providers[region.name]}),
        )
        scale_sets.append(pulumi.Output.all(network.resource_group_name, fleet.scale_set_name).apply(
            lambda parts: (str(parts[0]), str(parts[1]))
        ))
        outputs.endpoints[f"azure/{region.name}"] = fleet.public_ip
    hub = side.networks[side.hub]
    targets = pulumi.Output.all(side.subscription_id, identity.controller_client_id, *scale_sets).apply(
        lambda parts: rendered.AzureTargets(
            subscription=str(parts[0]), client_id=str(parts[1]), scale_sets=tuple(parts[2:])
        )
    )
    controller_commands = commands(identity.controller_client_id)
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
            addresses=addresses,
            user_data=[
                _controller_script(
                    config, placement, hosts, controller_commands, address, targets,
                    install=_azure_install(side, identity.controller_client_id, extras="postgres,azure"),
                ).apply(scripts.user_data)
                for address in addresses
            ],
            depends_on=[*_uploads(side), *identity.reads["controller"]],
        ),
        pulumi.ResourceOptions(providers={"azure-native": side.providers[side.hub]}),
    )
    outputs.controllers["azure"] = controllers.addresses


_SECRET_ORDER = ("agent-token", "app-admin-token", "db-password", "api-token", "push-token")
"""The order of `scripts.SecretCommands`' fields."""


def _api_script(
    config: StackConfig,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    region: str,
    commands: pulumi.Output[scripts.SecretCommands],
    *,
    platform: str,
    agent: Mapping[str, object],
    install: pulumi.Input[scripts.Install],
    tls: pulumi.Output[str] | None = None,
) -> pulumi.Output[str]:
    """`platform`: which notices the agent watches (`gcp`: GCE metadata; `azure`: IMDS scheduled events).
    `agent`: its agent.yaml (infra/rendered.py).
    `tls`: the command printing the TLS PEM, when the VM terminates TLS itself (Azure's L4 load balancer)."""
    write, read = hosts[placement.primary_region], hosts[placement.read_region[region]]
    tls_command: pulumi.Output[str | None] = tls if tls is not None else pulumi.Output.from_input(None)
    return pulumi.Output.all(write, read, commands, tls_command, install).apply(
        lambda parts: scripts.api_server_script(
            config.budget,
            config.app,
            config.database,
            scripts.DatabaseHosts(write_host=parts[0], read_host=parts[1]),
            parts[2],
            platform=platform,
            agent=agent,
            tls_certificate=parts[3],
            install=parts[4],
        )
    )


def _controller_script(
    config: StackConfig,
    placement: DatabasePlacement,
    hosts: Mapping[str, pulumi.Output[str]],
    commands: pulumi.Output[scripts.SecretCommands],
    address: str,
    targets: pulumi.Output[rendered.GcpTargets] | pulumi.Output[rendered.AzureTargets],
    *,
    install: pulumi.Input[scripts.Install],
) -> pulumi.Output[str]:
    """One controller VM's script: its own address, its own cloud's targets (DESIGN.md §11)."""
    return pulumi.Output.all(hosts[placement.primary_region], commands, targets, install).apply(
        lambda parts: scripts.controller_script(
            config.budget,
            config.app,
            config.database,
            parts[0],
            rendered.controller_config(config, address=address, write_host=parts[0], targets=parts[2]),
            parts[1],
            install=parts[3],
        )
    )


def _gcp_store(side: _Gcp, shipped: artifacts.Artifacts) -> GcpArtifactStore:
    """The bucket the GCP VMs install from, readable by the fleet's and the controllers' accounts only."""
    return GcpArtifactStore(
        "gcp-artifacts",
        GcpArtifactStoreArgs(
            project=side.settings.project,
            location=side.hub,
            artifacts=shipped,
            readers={"fleet": side.identity.fleet_email, "controller": side.identity.controller_email},
        ),
        pulumi.ResourceOptions(providers={"gcp": side.providers[side.hub]}),
    )


def _azure_store(config: StackConfig, side: _Azure, shipped: artifacts.Artifacts) -> AzureArtifactStore:
    """The container the Azure VMs install from, readable by the fleet's and the controllers' identities only."""
    return AzureArtifactStore(
        "azure-artifacts",
        AzureArtifactStoreArgs(
            stack=config.stack,
            location=side.hub,
            resource_group_name=side.networks[side.hub].resource_group_name,
            subscription_id=side.subscription_id,
            artifacts=shipped,
            readers={
                "fleet": side.identity.fleet_principal_id,
                "controller": side.identity.controller_principal_id,
            },
        ),
        pulumi.ResourceOptions(providers={"azure-native": side.providers[side.hub]}),
    )


def _uploads(side: _Gcp | _Azure) -> list[pulumi.Resource]:
    assert side.store is not None
    return side.store.uploads


def _gcp_install(side: _Gcp, *, extras: str) -> scripts.Install:
    assert side.store is not None
    bucket, shipped = side.store.bucket, side.store.artifacts
    wheelhouse, app = shipped.wheelhouse, shipped.app
    return scripts.Install(
        wheelhouse=scripts.gcp_artifact(bucket, wheelhouse.object_name, wheelhouse.sha256),
        extras=extras,
        app=scripts.gcp_artifact(bucket, app.object_name, app.sha256) if app else None,
    )


def _azure_install(side: _Azure, client_id: pulumi.Output[str], *, extras: str) -> pulumi.Output[scripts.Install]:
    assert side.store is not None
    store = side.store
    wheelhouse, app = store.artifacts.wheelhouse, store.artifacts.app

    def install(account: str, client: str) -> scripts.Install:
        def fetch(artifact: artifacts.Artifact) -> scripts.ArtifactFetch:
            return scripts.azure_artifact(account, store.container, artifact.object_name, client, artifact.sha256)

        return scripts.Install(wheelhouse=fetch(wheelhouse), extras=extras, app=fetch(app) if app else None)

    return pulumi.Output.all(store.account_name, client_id).apply(lambda parts: install(parts[0], parts[1]))
