"""The policy pack's rules as plain functions: a resource type and its properties in, violation strings out.

The CrossGuard pack (`__main__.py`) wraps them; the tests and the offline plan call them directly. Properties are
the engine's camelCase inputs. What they guard, and why:

- `lb_timeouts`: Azure rules cut idle flows with an RST at no more than the budget's LB idle timeout (but never
  a live client's); the GCP backend service neither caps WebSockets at its 30 s default nor drains for less
  than a verified drain takes.
- `termination_notices`: the Azure terminate notification and GCP graceful shutdown are on and longer than
  drain + verify + margin (and within what the platform accepts).
- `private_databases`: no database instance has a public address.
- `secrets_kept_secret`: password-bearing properties are secret in state; boot scripts carry no secret values.
- `replica_per_region` (stack-wide): every region with an API fleet reads from a database instance in its own
  region, or, in the other cloud, from the nearest one the proximity table declares.

The lessons of the review against the providers' schemas (issue 13), one rule each:

- `cloud_sql_edition`: the tier matches the edition (ENTERPRISE_PLUS takes only `db-perf-optimized-N-*`; Postgres
  16+ defaults to it, so a `db-custom-*` tier needs `edition: ENTERPRISE` explicitly). Source: pulumi_gcp
  `DatabaseInstanceSettingsArgs.edition`.
- `armor_window`: a rate-limit interval Cloud Armor accepts (https://cloud.google.com/armor/docs/rate-limiting-overview).
- `immutable_boot_data`: an Azure VM's `osProfile.customData` cannot change after creation (ARM 409
  PropertyChangeNotAllowed): it must not carry the rendered boot script, which belongs in `userData`.
- `health_probe_body`: the scale set's ApplicationHealth extension is 1.x (status code only); 2.x needs a JSON
  `{"ApplicationHealthState": ...}` body that drainctl's `/readyz` does not send (FACTS.md; Azure's health
  extension docs).
- `upgrade_fits_capacity`: rolling-upgrade percentages admit at least one VM of the capacity (one draining VM is
  unhealthy on `/readyz`), and the scale set spans availability zones.
- `surge_fits_zones`: a regional MIG pins its zones and its fixed surge / unavailable is 0 or at least their number
  (https://cloud.google.com/compute/docs/instance-groups/regional-mig-distribution-shape).
- `key_vault_closed`: a Key Vault's network rules deny by default
  (https://learn.microsoft.com/azure/key-vault/general/network-security).
- `offline_install` (issue 12): a boot script installs Python packages only from the stack's own wheelhouse
  (`pip install --no-index`), never by name from a package index (whoever registers the name there would run
  code as root on every VM), and every artifact it fetches (`gcp_object`, `azure_blob`) goes through
  `fetch_verified <sha256>`, which keeps the file only if its hash is the one rendered into the script.
- `cross_cloud_path` (stack-wide): fleets in both clouds mean reads across them: the stack creates the HA VPN
  (two tunnels, two BGP peers), an active-active BGP Azure gateway with two connections, and the DNS forwarding
  (database on Azure) or the exported private services routes (database on GCP).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from controller.core.budget import Budget
from infra import proximity

Props = Mapping[str, Any]

AZURE_LB = "azure-native:network:LoadBalancer"
AZURE_VMSS = "azure-native:compute:VirtualMachineScaleSet"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_POSTGRES = "azure-native:dbforpostgresql:Server"
GCP_BACKEND = "gcp:compute/backendService:BackendService"
GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
GCP_MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
GCP_ARMOR = "gcp:compute/securityPolicy:SecurityPolicy"
GCP_HA_VPN = "gcp:compute/haVpnGateway:HaVpnGateway"
GCP_TUNNEL = "gcp:compute/vPNTunnel:VPNTunnel"
GCP_ROUTER_PEER = "gcp:compute/routerPeer:RouterPeer"
GCP_DNS_ZONE = "gcp:dns/managedZone:ManagedZone"
GCP_PEERING_ROUTES = "gcp:compute/networkPeeringRoutesConfig:NetworkPeeringRoutesConfig"
AZURE_VPN_GATEWAY = "azure-native:network:VirtualNetworkGateway"
AZURE_VPN_CONNECTION = "azure-native:network:VirtualNetworkGatewayConnection"
AZURE_VAULT = "azure-native:keyvault:Vault"

ARMOR_INTERVALS_S = frozenset({10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600})
ENTERPRISE_PLUS_TIER_PREFIX = "db-perf-optimized-"
RENDERED_MARKER = "drainctl boot script, rendered by infra/scripts.py"
AZURE_POSTGRES_SUFFIX = "postgres.database.azure.com."

AZURE_IDLE_DEFAULT_MIN, AZURE_IDLE_MIN_MIN, AZURE_IDLE_MAX_MIN = 4, 4, 30
AZURE_NOTICE_MIN_S, AZURE_NOTICE_MAX_S = 300, 900
GCP_BACKEND_TIMEOUT_DEFAULT_S = 30
GCP_MAX_HOLD_S = 3600

SECRET_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "gcp:sql/user:User": ("password",),
    GCP_SQL: ("rootPassword",),
    "gcp:secretmanager/secretVersion:SecretVersion": ("secretData",),
    AZURE_POSTGRES: ("administratorLoginPassword",),
    "azure-native:keyvault:Secret": ("properties",),
    GCP_TUNNEL: ("sharedSecret",),
    AZURE_VPN_CONNECTION: ("sharedKey",),
}
"""Properties that hold a secret value; each must be a secret (encrypted in state, masked in output)."""

BOOT_SCRIPTS: Mapping[str, tuple[str, ...]] = {
    GCP_TEMPLATE: ("metadataStartupScript", "metadata"),
    GCP_INSTANCE: ("metadataStartupScript", "metadata"),
    AZURE_VMSS: ("virtualMachineProfile.osProfile.customData", "virtualMachineProfile.userData"),
    AZURE_VM: ("osProfile.customData", "userData"),
}
"""Properties readable by anyone who can read the VM (and by every process on it through the metadata service)."""

_SECRET_IN_TEXT = (
    # `PGPASSWORD=...`, `db_password: ...`, `token=...` with a literal value (not `$VAR`, `$(cmd)` or `{...}`);
    # `token_file:` and `DATABASE_PASSWORD_FILE=` name files, so the key must end right before `:`/`=`.
    re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key)\s*[:=]\s*['\"]?[^\s'\"$({]{6,}"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)


@dataclass(frozen=True)
class Context:
    """What a rule may need beyond the resource: the stack's budget, and which properties are secrets."""

    budget: Budget = field(default_factory=Budget)
    secret_paths: Collection[str] = ()
    """Dotted property paths marked secret (the engine's `additionalSecretOutputs`, or secret inputs)."""


ResourceRule = Callable[[str, Props, Context], list[str]]


def lb_timeouts(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type == AZURE_LB:
        return _azure_lb(props, ctx.budget)
    if resource_type == GCP_BACKEND:
        return _gcp_backend(props, ctx.budget)
    return []


def termination_notices(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type == AZURE_VMSS:
        return _azure_notice(props, ctx.budget)
    if resource_type == GCP_TEMPLATE:
        return _gcp_graceful_shutdown(props, ctx.budget)
    return []


def private_databases(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type == GCP_SQL:
        ip = _get(props, "settings.ipConfiguration") or {}
        problems = []
        if ip.get("ipv4Enabled") is not False:
            problems.append("Cloud SQL instance has a public IPv4 address (settings.ipConfiguration.ipv4Enabled)")
        if not ip.get("privateNetwork"):
            problems.append("Cloud SQL instance has no private network (settings.ipConfiguration.privateNetwork)")
        if ip.get("authorizedNetworks"):
            problems.append("Cloud SQL instance lists authorized networks for public access")
        return problems
    if resource_type == AZURE_POSTGRES:
        network = props.get("network") or {}
        problems = []
        if network.get("publicNetworkAccess") != "Disabled":
            problems.append("PostgreSQL flexible server allows public network access (network.publicNetworkAccess)")
        if not network.get("delegatedSubnetResourceId"):
            problems.append(
                "PostgreSQL flexible server is outside a delegated subnet (network.delegatedSubnetResourceId)"
            )
        return problems
    return []


def secrets_kept_secret(resource_type: str, props: Props, ctx: Context) -> list[str]:
    problems = [
        f"{name} holds a secret but is not marked secret"
        for name in SECRET_PROPERTIES.get(resource_type, ())
        if _get(props, name) is not None and not _is_secret(name, ctx.secret_paths)
    ]
    for path in BOOT_SCRIPTS.get(resource_type, ()):
        for text in _texts(_get(props, path)):
            if any(pattern.search(text) for pattern in _SECRET_IN_TEXT):
                problems.append(f"{path} contains what looks like a secret value; fetch it at boot instead")
                break
    return problems


def cloud_sql_edition(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != GCP_SQL:
        return []
    tier = str(_get(props, "settings.tier") or "")
    edition = _get(props, "settings.edition")
    version = re.fullmatch(r"POSTGRES_(\d+)", str(props.get("databaseVersion", "")))
    default = "ENTERPRISE_PLUS" if version and int(version.group(1)) >= 16 else "ENTERPRISE"
    effective = edition or default
    wanted = "ENTERPRISE_PLUS" if tier.startswith(ENTERPRISE_PLUS_TIER_PREFIX) else "ENTERPRISE"
    if effective == wanted:
        return []
    how = f"edition {edition}" if edition else f"no edition (defaults to {default} on {props.get('databaseVersion')})"
    return [f"tier {tier} needs edition {wanted}, the instance has {how}: Cloud SQL refuses it at create"]


def armor_window(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != GCP_ARMOR:
        return []
    problems = []
    for rule in props.get("rules") or []:
        interval = _get(rule, "rateLimitOptions.rateLimitThreshold.intervalSec")
        if interval is not None and interval not in ARMOR_INTERVALS_S:
            problems.append(
                f"rule {rule.get('priority')}: intervalSec {interval:g} is not one Cloud Armor accepts "
                f"({', '.join(str(value) for value in sorted(ARMOR_INTERVALS_S))})"
            )
    return problems


def immutable_boot_data(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != AZURE_VM:
        return []
    if any(RENDERED_MARKER in text for text in _texts(_get(props, "osProfile.customData"))):
        return [
            "osProfile.customData carries the rendered boot script, but a VM's customData cannot change after "
            "creation (409 PropertyChangeNotAllowed): put the script in userData"
        ]
    return []


def health_probe_body(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != AZURE_VMSS:
        return []
    problems = []
    for extension in _get(props, "virtualMachineProfile.extensionProfile.extensions") or []:
        if not str(extension.get("type", "")).startswith("ApplicationHealth"):
            continue
        version = str(extension.get("typeHandlerVersion", ""))
        if not version.startswith("1."):
            problems.append(
                f"ApplicationHealth extension {version}: 2.x reads a JSON body {{\"ApplicationHealthState\": ...}} and "
                "reports Unknown for drainctl's plain-text /readyz; use 1.0 (status code only)"
            )
    return problems


def upgrade_fits_capacity(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != AZURE_VMSS:
        return []
    problems = []
    capacity = _get(props, "sku.capacity") or 1
    rolling = _get(props, "upgradePolicy.rollingUpgradePolicy") or {}
    for key in ("maxUnhealthyInstancePercent", "maxUnhealthyUpgradedInstancePercent"):
        percent = rolling.get(key, 20)
        if percent * capacity / 100 < 1:
            problems.append(
                f"{key} ({percent:g}%) is less than one VM at capacity {capacity:g}: one draining VM aborts the "
                "rolling upgrade"
            )
    if not props.get("zones"):
        problems.append("the scale set has no availability zones (zones)")
    return problems


def surge_fits_zones(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != GCP_MIG:
        return []
    zones = props.get("distributionPolicyZones") or []
    if not zones:
        return ["distributionPolicyZones is not pinned: the fixed surge cannot be checked against the zones"]
    update = props.get("updatePolicy") or {}
    problems = []
    for key in ("maxSurgeFixed", "maxUnavailableFixed"):
        value = update.get(key)
        if value is not None and value != 0 and value < len(zones):
            problems.append(f"updatePolicy.{key} ({value:g}) must be 0 or at least the number of zones ({len(zones)})")
    return problems


def key_vault_closed(resource_type: str, props: Props, ctx: Context) -> list[str]:
    if resource_type != AZURE_VAULT:
        return []
    if _get(props, "properties.networkAcls.defaultAction") != "Deny":
        return ["Key Vault is open to every network (properties.networkAcls.defaultAction must be Deny)"]
    return []


_PIP_INSTALL = re.compile(r"(?:\bpip(?:3(?:\.\d+)?)?|-m\s+pip)\s+install\b[^\n]*")
_FETCHERS = ("gcp_object", "azure_blob")
_VERIFIED_FETCH = re.compile(r"^\s*fetch_verified\s+[0-9a-f]{64}\s+\S+\s+(?:gcp_object|azure_blob)\s")


def offline_install(resource_type: str, props: Props, ctx: Context) -> list[str]:
    problems: list[str] = []
    for path in BOOT_SCRIPTS.get(resource_type, ()):
        for text in _texts(_get(props, path)):
            for script in _cloud_config_files(text):
                problems += _install_problems(path, script)
    return sorted(set(problems))


def _cloud_config_files(text: str) -> list[str]:
    """A cloud-config (Azure custom data) is YAML: check the files it writes, not its quoted text."""
    if not text.startswith("#cloud-config"):
        return [text]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return [text]
    files = document.get("write_files") if isinstance(document, Mapping) else None
    return [str(item.get("content", "")) for item in files or [] if isinstance(item, Mapping)] or [text]


def _install_problems(path: str, text: str) -> list[str]:
    problems = [
        f"{path} runs `{match.group(0).strip()[:80]}` without --no-index: it installs by name from a package "
        "index; install from the stack's wheelhouse (`pip install --no-index --find-links ...`)"
        for match in _PIP_INSTALL.finditer(text)
        if "--no-index" not in match.group(0)
    ]
    for line in text.splitlines():
        words = line.split()
        calls = [word for word in words if word in _FETCHERS]
        if not calls or line.lstrip().startswith(tuple(f"{name}()" for name in _FETCHERS)):
            continue
        if not _VERIFIED_FETCH.match(line):
            problems.append(
                f"{path} fetches an artifact with {calls[0]} outside `fetch_verified <sha256>`: nothing checks "
                "its hash before it is installed"
            )
    return problems


RESOURCE_RULES: Mapping[str, tuple[str, ResourceRule]] = {
    "lb-timeouts": ("Load balancers cut idle flows with RST at the budget's idle timeout.", lb_timeouts),
    "termination-notices": ("Termination notices outlast drain + verify + margin.", termination_notices),
    "private-databases": ("No database instance has a public address.", private_databases),
    "secrets-kept-secret": ("Secret values are secrets and stay out of boot scripts.", secrets_kept_secret),
    "cloud-sql-edition": ("A Cloud SQL tier matches its edition.", cloud_sql_edition),
    "armor-window": ("Cloud Armor rate-limit intervals are ones Cloud Armor accepts.", armor_window),
    "immutable-boot-data": ("An Azure VM's boot script is in userData, not immutable customData.", immutable_boot_data),
    "health-probe-body": ("The VMSS health extension's version matches /readyz's body.", health_probe_body),
    "upgrade-fits-capacity": ("Rolling upgrades admit one unhealthy VM; scale sets span zones.", upgrade_fits_capacity),
    "surge-fits-zones": ("A regional MIG's fixed surge is 0 or at least its pinned zones.", surge_fits_zones),
    "key-vault-closed": ("Key Vaults deny by default and admit only the stack's subnets.", key_vault_closed),
    "offline-install": ("Boot scripts install only the stack's own hash-checked artifacts.", offline_install),
}


def replica_per_region(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Stack-wide: every fleet region is served by a database instance in its region or the declared nearest."""
    fleets: list[tuple[str, str]] = []
    databases: dict[str, set[str]] = {"gcp": set(), "azure": set()}
    primaries: list[str] = []
    for resource_type, props in resources:
        if resource_type == GCP_MIG:
            fleets.append(("gcp", str(props.get("region"))))
        elif resource_type == AZURE_VMSS:
            fleets.append(("azure", str(props.get("location"))))
        elif resource_type == GCP_SQL:
            databases["gcp"].add(str(props.get("region")))
            if not props.get("masterInstanceName"):
                primaries.append(f"gcp/{props.get('region')}")
        elif resource_type == AZURE_POSTGRES:
            databases["azure"].add(str(props.get("location")))
            if props.get("createMode") != "Replica":
                primaries.append(f"azure/{props.get('location')}")
    if len(primaries) != 1:
        return [f"expected exactly one database primary, found {len(primaries)}: {', '.join(primaries) or 'none'}"]
    home = primaries[0].partition("/")[0]
    problems = []
    for cloud, region in fleets:
        if cloud == home and region not in databases[home]:
            problems.append(f"{cloud} region {region} has an API fleet but no database instance in its region")
        elif cloud != home and proximity.nearest(cloud, region, databases[home]) is None:
            problems.append(
                f"{cloud} region {region} has an API fleet but none of its declared nearest {home} regions "
                f"({', '.join(proximity.NEAREST.get(cloud, {}).get(region, ())) or 'none declared'}) has a replica"
            )
    return problems


def cross_cloud_path(resources: Sequence[tuple[str, Props]]) -> list[str]:
    """Stack-wide: with API fleets in both clouds, something reads across them; the private path must exist."""
    by_type: dict[str, list[Props]] = {}
    for resource_type, props in resources:
        by_type.setdefault(resource_type, []).append(props)
    if not (by_type.get(GCP_MIG) and by_type.get(AZURE_VMSS)):
        return []
    problems = []
    if not by_type.get(GCP_HA_VPN):
        problems.append("fleets in both clouds read across them, but the stack has no GCP HA VPN gateway")
    if len(by_type.get(GCP_TUNNEL, [])) < 2 or len(by_type.get(GCP_ROUTER_PEER, [])) < 2:
        problems.append("the HA VPN needs two tunnels with a BGP peer each (one per Azure gateway instance)")
    gateways = [g for g in by_type.get(AZURE_VPN_GATEWAY, []) if g.get("activeActive") and g.get("enableBgp")]
    if not gateways:
        problems.append("the stack has no active-active, BGP-enabled Azure VPN gateway")
    if len([c for c in by_type.get(AZURE_VPN_CONNECTION, []) if c.get("enableBgp")]) < 2:
        problems.append("the Azure VPN gateway needs two BGP connections, one per GCP HA VPN interface")
    if by_type.get(AZURE_POSTGRES):
        forwarders = [z for z in by_type.get(GCP_DNS_ZONE, []) if z.get("dnsName") == AZURE_POSTGRES_SUFFIX
                      and _get(z, "forwardingConfig.targetNameServers")]
        if not forwarders:
            problems.append(f"GCP cannot resolve the Azure servers' private names: no forwarding zone for "
                            f"{AZURE_POSTGRES_SUFFIX}")
    if by_type.get(GCP_SQL) and not any(r.get("exportCustomRoutes") for r in by_type.get(GCP_PEERING_ROUTES, [])):
        problems.append("Cloud SQL cannot answer Azure: the private services peering does not export custom routes")
    return problems


STACK_RULES: Mapping[str, tuple[str, Callable[[Sequence[tuple[str, Props]]], list[str]]]] = {
    "replica-per-region": ("Every region with an API fleet is served by a nearby read replica.", replica_per_region),
    "cross-cloud-path": ("Reads across clouds have the VPN, its BGP peers and DNS forwarding.", cross_cloud_path),
}


def _azure_lb(props: Props, budget: Budget) -> list[str]:
    problems = []
    limit_s = budget.lb_idle_timeout_s
    for rule in props.get("loadBalancingRules") or []:
        name = rule.get("name", "?")
        if rule.get("enableTcpReset") is not True:
            problems.append(f"rule {name}: enableTcpReset must be true (idle flows are cut silently otherwise)")
        minutes = rule.get("idleTimeoutInMinutes", AZURE_IDLE_DEFAULT_MIN)
        if not AZURE_IDLE_MIN_MIN <= minutes <= AZURE_IDLE_MAX_MIN:
            problems.append(f"rule {name}: idleTimeoutInMinutes ({minutes:g}) must be from 4 to 30")
        if minutes * 60 > limit_s:
            problems.append(
                f"rule {name}: idleTimeoutInMinutes ({minutes:g} min) exceeds the budget's lb_idle_timeout_s "
                f"({limit_s:g} s): stale connections would linger"
            )
        if minutes * 60 <= budget.heartbeat_interval_s:
            problems.append(
                f"rule {name}: idleTimeoutInMinutes ({minutes:g} min) must exceed heartbeat_interval_s "
                f"({budget.heartbeat_interval_s:g} s): live clients would be cut"
            )
    for rule in props.get("outboundRules") or []:
        if rule.get("enableTcpReset") is not True:
            problems.append(f"outbound rule {rule.get('name', '?')}: enableTcpReset must be true")
    return problems


def _gcp_backend(props: Props, budget: Budget) -> list[str]:
    problems = []
    timeout = props.get("timeoutSec", GCP_BACKEND_TIMEOUT_DEFAULT_S)
    floor = max(budget.lb_idle_timeout_s, budget.platform_notice_s)
    if timeout <= floor:
        problems.append(
            f"timeoutSec ({timeout:g}) caps every WebSocket's lifetime on this load balancer; it must exceed "
            f"lb_idle_timeout_s and platform_notice_s ({floor:g} s)"
        )
    draining = props.get("connectionDrainingTimeoutSec", 0)
    needed = budget.drain_deadline_s + budget.verify_s + budget.margin_s
    if not needed <= draining <= GCP_MAX_HOLD_S:
        problems.append(
            f"connectionDrainingTimeoutSec ({draining:g}) must be from drain_deadline_s + verify_s + margin_s "
            f"({needed:g} s) to {GCP_MAX_HOLD_S} s: the LB would cut sockets before the drain is verified"
        )
    return problems


def _azure_notice(props: Props, budget: Budget) -> list[str]:
    profile = _get(props, "virtualMachineProfile.scheduledEventsProfile.terminateNotificationProfile") or {}
    if profile.get("enable") is not True:
        return ["terminate notification is off (virtualMachineProfile.scheduledEventsProfile...enable)"]
    seconds = _iso8601_seconds(str(profile.get("notBeforeTimeout", "PT5M")))
    if seconds is None:
        return [f"notBeforeTimeout {profile.get('notBeforeTimeout')!r} is not an ISO 8601 duration like PT10M"]
    problems = []
    if not AZURE_NOTICE_MIN_S <= seconds <= AZURE_NOTICE_MAX_S:
        problems.append(f"notBeforeTimeout ({seconds} s) must be from PT5M to PT15M")
    problems += _outlasts_drain("notBeforeTimeout", seconds, budget)
    return problems


def _gcp_graceful_shutdown(props: Props, budget: Budget) -> list[str]:
    shutdown = _get(props, "scheduling.gracefulShutdown") or {}
    if shutdown.get("enabled") is not True:
        return ["graceful shutdown is off (scheduling.gracefulShutdown.enabled)"]
    seconds = (_get(shutdown, "maxDuration.seconds") or 0) + (_get(shutdown, "maxDuration.nanos") or 0) / 1e9
    problems = []
    if not 1 <= seconds <= GCP_MAX_HOLD_S:
        problems.append(f"gracefulShutdown.maxDuration ({seconds:g} s) must be from 1 s to 1 h")
    problems += _outlasts_drain("gracefulShutdown.maxDuration", seconds, budget)
    return problems


def _outlasts_drain(what: str, seconds: float, budget: Budget) -> list[str]:
    needed = budget.drain_deadline_s + budget.verify_s + budget.margin_s
    if seconds > needed:
        return []
    return [
        f"{what} ({seconds:g} s) must exceed drain_deadline_s + verify_s + margin_s ({needed:g} s): "
        "the platform would delete the server before the drain is verified"
    ]


def _iso8601_seconds(text: str) -> int | None:
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", text)
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _get(props: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(props, Mapping):
            return None
        props = props.get(part)
    return props


def _is_secret(name: str, secret_paths: Collection[str]) -> bool:
    return any(path == name or path.startswith(f"{name}.") or name.startswith(f"{path}.") for path in secret_paths)


def _texts(value: Any) -> list[str]:
    """Every string in a property, plus the base64-decoded form of strings that decode (custom data)."""
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, str):
        try:
            return [value, base64.b64decode(value, validate=True).decode("utf-8")]
        except (binascii.Error, UnicodeDecodeError):
            return [value]
    if isinstance(value, Sequence):  # lists, and the policy SDK's list proxies
        return [text for item in value for text in _texts(item)]
    return []
