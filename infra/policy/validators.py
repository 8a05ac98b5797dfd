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
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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


RESOURCE_RULES: Mapping[str, tuple[str, ResourceRule]] = {
    "lb-timeouts": ("Load balancers cut idle flows with RST at the budget's idle timeout.", lb_timeouts),
    "termination-notices": ("Termination notices outlast drain + verify + margin.", termination_notices),
    "private-databases": ("No database instance has a public address.", private_databases),
    "secrets-kept-secret": ("Secret values are secrets and stay out of boot scripts.", secrets_kept_secret),
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
