"""The offline plan: what a stack would create, without cloud credentials, the Pulumi CLI or provider plugins.

`make plan STACK=production` (`python -m infra.plan production`) runs the program under Pulumi's mocks and prints
one row per cloud resource (type, name, region, the properties that matter), the routing table the stack would
export, and the policy pack's verdict. SREs read it to review a change before `pulumi preview`.

Exit codes: 0 ok, 1 a policy is violated, 2 the stack config is refused (one line naming the key).
`--policy-config` prints the policy pack's config for the stack instead (the budget each rule checks against).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from controller.core.errors import ConfigError
from infra import heredocs
from infra.azure.artifacts import STORAGE_BLOB_DATA_READER
from infra.azure.identity import KEY_VAULT_SECRETS_USER
from infra.config import StackConfig, load_stack_file
from infra.dist import REPO
from infra.mocks import OfflineRun, Recorded, run_offline
from infra.oncall import access_notes, bastion_summary
from infra.policy.validators import RESOURCE_RULES, STACK_RULES, Context

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def plan(
    stack: Annotated[str, typer.Argument(help="Stack name: stacks/Pulumi.<stack>.yaml.")],
    stacks_dir: Annotated[Path, typer.Option(help="Where the stack files live.")] = STACKS_DIR,
    policy_config: Annotated[bool, typer.Option("--policy-config", help="Print the policy pack config.")] = False,
) -> None:
    """Print what STACK would create, its routing table and the policy verdict."""
    config = load_stack_file(stacks_dir / f"Pulumi.{stack}.yaml")
    if policy_config:
        budget = config.budget.as_dict()
        print(json.dumps({name: {"budget": budget} for name in RESOURCE_RULES}, indent=2))
        return
    run = run_offline(config)
    console = Console(width=max(Console().width, 200), highlight=False)
    console.print(_inventory(config, run))
    console.print(_routing(run))
    console.print(_controllers(run))
    for note in edge_notes(config):
        console.print(note)
    for note in access_notes(run):
        console.print(note)
    violations = policy_violations(config, run)
    for violation in violations:
        console.print(f"[red]policy violation[/red] {violation}")
    counts = Counter(r.type.split(":")[0] for r in run.custom() if not r.type.startswith("drainctl:"))
    summary = ", ".join(f"{count} {provider}" for provider, count in sorted(counts.items()))
    console.print(f"{stack}: {sum(counts.values())} resources ({summary}); {len(violations)} policy violations")
    if violations:
        raise typer.Exit(1)


def edge_notes(config: StackConfig) -> list[str]:
    """What cuts a stale socket at each edge (docs/infra.md, "Load balancers and their idle-timeout semantics")."""
    b = config.budget
    notes = []
    if config.gcp:
        notes.append(
            f"GCP edge (external Application LB): no idle cut; a socket lives at most websocket_lifetime_s "
            f"({config.gcp.websocket_lifetime_s} s). A stale socket is bounded by the server's idle timeout "
            f"({b.server_idle_timeout_s:g} s) and the client's heartbeat timeout ({b.heartbeat_timeout_s:g} s). "
            "TLS terminates at the LB (managed certificate); backends and health checks are plain HTTP."
        )
    if config.azure:
        notes.append(
            f"Azure edge (Standard LB, L4): idle flows reset after {b.lb_idle_timeout_s:g} s (TCP reset on); "
            f"443 -> {config.app.tls_port}, where HAProxy on each VM terminates TLS with the Key Vault certificate "
            f"`tls-certificate`; probes and the health extension stay plain HTTP on {config.app.app_port}."
        )
    return notes


def policy_violations(config: StackConfig, run: OfflineRun) -> list[str]:
    """Every rule of the policy pack over the recorded stack, as `pulumi preview --policy-pack` would run them."""
    violations = []
    for resource in run.custom():
        context = Context(budget=config.budget, secret_paths=resource.secret_paths)
        for name, (_, rule) in RESOURCE_RULES.items():
            violations += [f"{name}: {resource.name}: {v}" for v in rule(resource.type, resource.inputs, context)]
    resources = [(resource.type, resource.inputs) for resource in run.custom()]
    for name, (_, stack_rule) in STACK_RULES.items():
        violations += [f"{name}: {violation}" for violation in stack_rule(resources)]
    return violations


def _inventory(config: StackConfig, run: OfflineRun) -> Table:
    table = Table(
        title=f"drainctl stack {config.stack}: offline plan (Pulumi mocks)", title_justify="left", box=box.SIMPLE
    )
    for column in ("type", "name", "region", "key properties"):
        table.add_column(column, overflow="fold")
    rows = [resource for resource in run.custom() if not resource.type.startswith("drainctl:")]
    for resource in sorted(rows, key=lambda r: (r.region != "global", r.region, r.type, r.name)):
        table.add_row(_short_type(resource.type), resource.name, resource.region, summarize(resource))
    return table


def _routing(run: OfflineRun) -> Table:
    table = Table(title="routing (stack output `routing`)", title_justify="left", box=box.SIMPLE)
    for column in ("region", "write_host", "read_host", "read_path"):
        table.add_column(column)
    for region, hosts in run.outputs.get("routing", {}).items():
        table.add_row(region, hosts["write_host"], hosts["read_host"], hosts.get("read_path", ""))
    return table


CONTROLLER_YAML = "/etc/drainctl/controller.yaml"


def controller_configs(run: OfflineRun) -> dict[str, dict[str, Any]]:
    """Controller VM name -> the controller.yaml its rendered boot script writes (boot values left as `$...`)."""
    configs = {}
    for resource in run.of_type("gcp:compute/instance:Instance"):
        script = str(resource.inputs.get("metadataStartupScript", ""))
        if CONTROLLER_YAML in heredocs.files(script):
            configs[f"gcp/{resource.name}"] = yaml.safe_load(heredocs.files(script)[CONTROLLER_YAML][0])
    for resource in run.of_type("azure-native:compute:VirtualMachine"):
        script = heredocs.azure_script(str(resource.inputs.get("userData", "")))
        if CONTROLLER_YAML in heredocs.files(script):
            configs[f"azure/{resource.name}"] = yaml.safe_load(heredocs.files(script)[CONTROLLER_YAML][0])
    return configs


def _controllers(run: OfflineRun) -> Table:
    """Each controller VM's own settings, read back from its rendered controller.yaml (DESIGN.md §11)."""
    table = Table(title="controllers (rendered controller.yaml, per cloud)", title_justify="left", box=box.SIMPLE)
    for column in ("controller", "api", "leader", "watches"):
        table.add_column(column, overflow="fold")
    for name, config in controller_configs(run).items():
        leader = config.get("leader", {})
        table.add_row(
            name,
            str(_get(config, "api.listen")),
            f"{leader.get('kind')} lease {leader.get('name')} ({leader.get('lease_s'):g} s / renew "
            f"{leader.get('renew_s'):g} s); journal {config.get('journal')}",
            "; ".join(_source_summary(cloud, source) for cloud, source in config.get("sources", {}).items()),
        )
    return table


def _source_summary(cloud: str, source: Mapping[str, Any]) -> str:
    if cloud == "gcp":
        groups = ", ".join(f"{g['region']}/{g['name']}" for g in source.get("groups", []))
        return (
            f"gcp {source.get('project')}: MIGs {groups}; poll {source.get('poll_interval_s'):g} s, discovery "
            f"{_get(source, 'discovery.interval_s'):g} s"
        )
    sets = ", ".join(f"{s['resource_group']}/{s['name']}" for s in source.get("scale_sets", []))
    return f"azure: scale sets {sets}; every {source.get('interval_s'):g} s"


def _short_type(resource_type: str) -> str:
    """`gcp:compute/instanceTemplate:InstanceTemplate` -> `gcp:compute.InstanceTemplate`."""
    provider, module, kind = [*resource_type.split(":"), "", ""][:3]
    return f"{provider}:{module.split('/')[0]}.{kind}" if kind else resource_type


def summarize(resource: Recorded) -> str:
    """The properties of a resource that a reviewer of this stack cares about."""
    describe = _SUMMARIES.get(resource.type)
    secrets = sorted(path for path in resource.secret_paths if path.split(".")[0] in resource.inputs)
    parts = [describe(resource.inputs)] if describe else []
    if secrets:
        parts.append("secret: " + ", ".join(secrets))
    return "; ".join(part for part in parts if part)


def _get(props: Any, path: str, default: Any = None) -> Any:
    for part in path.split("."):
        props = props.get(part) if isinstance(props, Mapping) else None
    return default if props is None else props


def _template(p: Mapping[str, Any]) -> str:
    shutdown = _get(p, "scheduling.gracefulShutdown", {})
    state = "on" if shutdown.get("enabled") else "OFF"
    return f"{p.get('machineType')}; graceful shutdown {state}, max {_get(shutdown, 'maxDuration.seconds')} s"


def _mig(p: Mapping[str, Any]) -> str:
    update = p.get("updatePolicy", {})
    ports = ", ".join(f"{port['name']}:{port['port']}" for port in p.get("namedPorts", []))
    return (
        f"zones {', '.join(p.get('distributionPolicyZones', []))}; "
        f"update {update.get('type')}/{update.get('minimalAction')} surge {update.get('maxSurgeFixed')} "
        f"unavailable {update.get('maxUnavailableFixed')}; port {ports}; "
        f"autohealing {bool(p.get('autoHealingPolicies'))}"
    )


def _armor(p: Mapping[str, Any]) -> str:
    throttles = [rule for rule in p.get("rules", []) if rule.get("action") == "throttle"]
    return "; ".join(
        f"throttle {_get(rule, 'match.expr.expression')} {_get(rule, 'rateLimitOptions.rateLimitThreshold.count')}"
        f"/{_get(rule, 'rateLimitOptions.rateLimitThreshold.intervalSec')} s per "
        f"{_get(rule, 'rateLimitOptions.enforceOnKey')} -> {_get(rule, 'rateLimitOptions.exceedAction')}"
        for rule in throttles
    )


def _firewall(p: Mapping[str, Any]) -> str:
    verb, rules = ("allow", p.get("allows")) if p.get("allows") else ("deny", p.get("denies", []))
    ports = ",".join(port for rule in rules or [] for port in rule.get("ports", []))
    sources = p.get("sourceRanges") or [f"sa:{email}" for email in p.get("sourceServiceAccounts", [])]
    return f"{verb} tcp:{ports} from {', '.join(sources)} (priority {p.get('priority')})"


def _sql(p: Mapping[str, Any]) -> str:
    role = f"replica of {p['masterInstanceName']}" if p.get("masterInstanceName") else "primary"
    return (
        f"{p.get('databaseVersion')} {role}; {_get(p, 'settings.tier')} edition {_get(p, 'settings.edition')} "
        f"{_get(p, 'settings.availabilityType')}; "
        f"public IPv4 {_get(p, 'settings.ipConfiguration.ipv4Enabled')}"
    )


def _azure_lb(p: Mapping[str, Any]) -> str:
    rules = [
        f"rule {r.get('frontendPort')}->{r.get('backendPort')} idle {r.get('idleTimeoutInMinutes')} min "
        f"tcpReset {r.get('enableTcpReset')}"
        for r in p.get("loadBalancingRules", [])
    ]
    probes = [
        f"probe {probe.get('protocol')} {probe.get('requestPath')} port {probe.get('port')}"
        for probe in p.get("probes", [])
    ]
    return "; ".join(rules + probes)


def _vmss(p: Mapping[str, Any]) -> str:
    notice = _get(p, "virtualMachineProfile.scheduledEventsProfile.terminateNotificationProfile", {})
    extensions = _get(p, "virtualMachineProfile.extensionProfile.extensions", [])
    health: Mapping[str, Any] = next((e for e in extensions if e.get("type", "").startswith("Appl")), {})
    rolling = _get(p, "upgradePolicy.rollingUpgradePolicy") or {}
    return (
        f"{_get(p, 'sku.name')} x{_get(p, 'sku.capacity')} zones {','.join(p.get('zones', []))}; terminate "
        f"notification {'on' if notice.get('enable') else 'OFF'} {notice.get('notBeforeTimeout')}; upgrade "
        f"{_get(p, 'upgradePolicy.mode')} maxSurge {rolling.get('maxSurge')} maxUnhealthy "
        f"{rolling.get('maxUnhealthyInstancePercent')}%; health extension {health.get('typeHandlerVersion')} "
        f"{_get(health, 'settings.protocol')} {_get(health, 'settings.requestPath')}"
    )


def _flexible(p: Mapping[str, Any]) -> str:
    role = "replica" if p.get("createMode") == "Replica" else f"primary HA {_get(p, 'highAvailability.mode')}"
    return (
        f"PostgreSQL {p.get('version')} {role}; {_get(p, 'sku.name')}; "
        f"public access {_get(p, 'network.publicNetworkAccess')}"
    )


def _nsg(p: Mapping[str, Any]) -> str:
    return "; ".join(
        f"{r.get('access').lower()} {r.get('destinationPortRange')} from {r.get('sourceAddressPrefix')} "
        f"({r.get('priority')})"
        for r in p.get("securityRules", [])
    )


def _vng(p: Mapping[str, Any]) -> str:
    peers = [
        address for peering in _get(p, "bgpSettings.bgpPeeringAddresses", [])
        for address in peering.get("customBgpIpAddresses", [])
    ]
    return (
        f"{_get(p, 'sku.name')} {p.get('vpnType')}; active-active {p.get('activeActive')}; BGP {p.get('enableBgp')} "
        f"ASN {_get(p, 'bgpSettings.asn')} at {', '.join(peers)}; {len(p.get('ipConfigurations', []))} instances"
    )


def _gcp_router(p: Mapping[str, Any]) -> str:
    bgp = p.get("bgp")
    if not bgp:
        return "Cloud NAT"
    ranges = [r.get("range") for r in bgp.get("advertisedIpRanges", [])]
    return f"BGP ASN {bgp.get('asn')}; advertises {', '.join([*bgp.get('advertisedGroups', []), *ranges])}"


def _dns_zone(p: Mapping[str, Any]) -> str:
    targets = [t.get("ipv4Address") for t in _get(p, "forwardingConfig.targetNameServers", [])]
    return f"{p.get('visibility')} forwarding {p.get('dnsName')} -> {', '.join(targets)} (over the VPN)"


def _vault(p: Mapping[str, Any]) -> str:
    acls = _get(p, "properties.networkAcls") or {}
    return (
        f"network default {acls.get('defaultAction', 'Allow (open)')}, bypass {acls.get('bypass')}, "
        f"{len(acls.get('virtualNetworkRules', []))} subnets; RBAC {_get(p, 'properties.enableRbacAuthorization')}"
    )


def _peering(p: Mapping[str, Any]) -> str:
    return (
        f"gateway transit {p.get('allowGatewayTransit', False)}, uses remote gateway "
        f"{p.get('useRemoteGateways', False)}, forwarded {p.get('allowForwardedTraffic')}"
    )


def _artifact(p: Mapping[str, Any]) -> str:
    """An uploaded artifact: its content-addressed name, the local file and its size."""
    name = p.get("name") or p.get("blobName")
    path = Path(str(_get(p, "source.path", "")))
    size = f"{path.stat().st_size / 2**20:.1f} MiB" if path.is_file() else "file missing"
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return f"{name} <- {shown} ({size}); the boot scripts check its sha256"


_ROLE_NAMES = {
    STORAGE_BLOB_DATA_READER: "Storage Blob Data Reader",
    KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
}


def _role_assignment(p: Mapping[str, Any]) -> str:
    role = str(p.get("roleDefinitionId", "")).rpartition("/")[2]
    scope = str(p.get("scope", "")).rpartition("/providers/")[2] or p.get("scope")
    return f"{_ROLE_NAMES.get(role, 'custom role')} on {scope} -> {p.get('principalId')}"


_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "gcp:storage/bucket:Bucket": lambda p: (
        f"{p.get('name')} in {p.get('location')}; uniform bucket-level access {p.get('uniformBucketLevelAccess')}, "
        f"public access prevention {p.get('publicAccessPrevention')}"
    ),
    "gcp:storage/bucketObject:BucketObject": _artifact,
    "gcp:storage/bucketIAMMember:BucketIAMMember": lambda p: f"{p.get('role')} -> {p.get('member')}",
    "azure-native:storage:StorageAccount": lambda p: (
        f"{p.get('accountName')} {_get(p, 'sku.name')}; anonymous blob access {p.get('allowBlobPublicAccess')}, "
        f"HTTPS only {p.get('enableHttpsTrafficOnly')}, TLS >= {p.get('minimumTlsVersion')}"
    ),
    "azure-native:storage:BlobContainer": lambda p: (
        f"{p.get('containerName')} in {p.get('accountName')}; public access {p.get('publicAccess')}"
    ),
    "azure-native:storage:Blob": _artifact,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "gcp:compute/instanceTemplate:InstanceTemplate": _template,
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": _mig,
    "gcp:compute/regionAutoscaler:RegionAutoscaler": lambda p: (
        f"{_get(p, 'autoscalingPolicy.minReplicas')}-{_get(p, 'autoscalingPolicy.maxReplicas')} replicas; scale in "
        f"<= {_get(p, 'autoscalingPolicy.scaleInControl.maxScaledInReplicas.fixed')} per "
        f"{_get(p, 'autoscalingPolicy.scaleInControl.timeWindowSec')} s"
    ),
    "gcp:compute/backendService:BackendService": lambda p: (
        f"{p.get('loadBalancingScheme')}; timeout (WebSocket lifetime cap) {p.get('timeoutSec')} s; "
        f"connection draining {p.get('connectionDrainingTimeoutSec')} s; {len(p.get('backends', []))} backends"
    ),
    "gcp:compute/healthCheck:HealthCheck": lambda p: (
        f"HTTP {_get(p, 'httpHealthCheck.requestPath')}:{_get(p, 'httpHealthCheck.port')} "
        f"every {p.get('checkIntervalSec')} s"
    ),
    "gcp:compute/securityPolicy:SecurityPolicy": _armor,
    "gcp:compute/firewall:Firewall": _firewall,
    "gcp:compute/subnetwork:Subnetwork": lambda p: f"{p.get('ipCidrRange')}",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate": lambda p: ", ".join(_get(p, "managed.domains", [])),
    "gcp:compute/instance:Instance": lambda p: (
        f"{p.get('machineType')} {p.get('zone')}; {_get(p, 'labels')}; "
        f"address {(p.get('networkInterfaces') or [{}])[0].get('networkIp', 'ephemeral')}"
    ),
    "gcp:compute/address:Address": lambda p: f"{p.get('addressType')} {p.get('address')} (static, controller)",
    "azure-native:network:NetworkInterface": lambda p: ", ".join(
        f"{c.get('privateIPAllocationMethod')} {c.get('privateIPAddress', '')}".strip()
        for c in p.get("ipConfigurations", [])
    ),
    "gcp:sql/databaseInstance:DatabaseInstance": _sql,
    "gcp:projects/iAMCustomRole:IAMCustomRole": lambda p: ", ".join(p.get("permissions", [])),
    "azure-native:network:LoadBalancer": _azure_lb,
    "azure-native:network:NetworkSecurityGroup": _nsg,
    "azure-native:network:VirtualNetwork": lambda p: ", ".join(
        f"{s.get('name')} {s.get('addressPrefix')}" for s in p.get("subnets", [])
    ),
    "azure-native:compute:VirtualMachineScaleSet": _vmss,
    "azure-native:compute:VirtualMachine": lambda p: (
        f"{_get(p, 'hardwareProfile.vmSize')} zone {p.get('zones')}; boot script in userData "
        f"({'set' if p.get('userData') else 'MISSING'}), customData = constant bootstrap"
    ),
    "azure-native:network:VirtualNetworkGateway": _vng,
    "azure-native:network:LocalNetworkGateway": lambda p: (
        f"GCP HA VPN interface {p.get('gatewayIpAddress')}; BGP ASN {_get(p, 'bgpSettings.asn')} at "
        f"{_get(p, 'bgpSettings.bgpPeeringAddress')}"
    ),
    "azure-native:network:VirtualNetworkGatewayConnection": lambda p: (
        f"{p.get('connectionType')} {p.get('connectionProtocol')} BGP {p.get('enableBgp')} to GCP"
    ),
    "azure-native:network:VirtualNetworkPeering": _peering,
    "azure-native:dnsresolver:InboundEndpoint": lambda p: (
        "inbound DNS endpoint " + ", ".join(c.get("privateIpAddress", "") for c in p.get("ipConfigurations", []))
    ),
    "azure-native:keyvault:Vault": _vault,
    "azure-native:network:BastionHost": bastion_summary,
    "gcp:compute/router:Router": _gcp_router,
    "gcp:compute/haVpnGateway:HaVpnGateway": lambda p: "HA VPN (2 interfaces)",
    "gcp:compute/externalVpnGateway:ExternalVpnGateway": lambda p: (
        f"{p.get('redundancyType')}: " + ", ".join(i.get("ipAddress", "") for i in p.get("interfaces", []))
    ),
    "gcp:compute/vPNTunnel:VPNTunnel": lambda p: (
        f"IKEv{p.get('ikeVersion')} interface {p.get('vpnGatewayInterface')} -> Azure instance "
        f"{p.get('peerExternalGatewayInterface')}"
    ),
    "gcp:compute/routerInterface:RouterInterface": lambda p: f"{p.get('ipRange')}",
    "gcp:compute/routerPeer:RouterPeer": lambda p: (
        f"BGP {p.get('ipAddress')} -> {p.get('peerIpAddress')} ASN {p.get('peerAsn')}"
    ),
    "gcp:dns/managedZone:ManagedZone": _dns_zone,
    "gcp:compute/networkPeeringRoutesConfig:NetworkPeeringRoutesConfig": lambda p: (
        f"peering {p.get('peering')}: export custom routes {p.get('exportCustomRoutes')}"
    ),
    "gcp:compute/globalAddress:GlobalAddress": lambda p: (
        f"{p.get('purpose')} {p.get('address')}/{p.get('prefixLength')}" if p.get("purpose") else "public"
    ),
    "azure-native:dbforpostgresql:Server": _flexible,
    "azure-native:authorization:RoleDefinition": lambda p: ", ".join(
        action for permission in p.get("permissions", []) for action in permission.get("actions", [])
    ),
}


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"drainctl plan: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
