"""The stack's configuration, parsed once at the edge into frozen typed objects.

Every key lives in the `drainctl:` namespace of a stack file (`stacks/Pulumi.<stack>.yaml`) or of `pulumi config`.
The timers come from `controller.core.budget.Budget` (the one budget the controller and the testbed also read); this
module adds the checks that only the clouds impose on those timers:

- Azure Standard Load Balancer rule idle timeout: whole minutes, 4 to 30 (newer docs allow up to 100; 30 is the
  limit every API version accepts). Source: https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-reset
- Azure terminate notification `notBeforeTimeout`: whole minutes, PT5M to PT15M.
  Source: https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-terminate-notification
- GCP graceful shutdown: 1 s to 1 h; backend connection draining: 0 to 3600 s.
  Source: https://cloud.google.com/compute/docs/instances/graceful-shutdown-overview
- GCP external Application LB: the backend-service timeout caps a WebSocket's whole lifetime, so it must outlast
  every other timer (see docs/infra.md).
- Cloud Armor rate-limit intervals: only 10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700 or 3600 s
  (`rateLimitThreshold.intervalSec`; 20 s is not among them).
  Source: https://cloud.google.com/armor/docs/rate-limiting-overview
- Regional MIG zones are pinned per region (`zones`), so the update policy's fixed surge can be derived from them
  (0 or at least the number of zones). Source: https://cloud.google.com/compute/docs/instance-groups/regional-mig-distribution-shape
- The private services range (Cloud SQL's peering) is pinned (`private_services_cidr`), because a VPN to Azure
  routes it: it must not overlap any subnet or VNet of either cloud.

Any problem (unknown key, wrong type, broken invariant) is one `ConfigError` line naming the file and the key.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from controller.core.budget import Budget
from controller.core.errors import BudgetError, ConfigError
from infra import proximity

NAMESPACE = "drainctl"
PROVIDER_NAMESPACES = frozenset({"gcp", "azure-native", "random", "pulumi"})
"""Other config namespaces a stack may set (provider settings); any other namespace is a typo."""

DEFAULT_API_PORT = 9300
"""The controllers' API port (`drainctl:controller.api_port`); on-call's access path opens it (C3)."""

AZURE_LB_IDLE_MIN_S, AZURE_LB_IDLE_MAX_S = 4 * 60, 30 * 60
AZURE_NOTICE_MIN_S, AZURE_NOTICE_MAX_S = 5 * 60, 15 * 60
GCP_NOTICE_MAX_S = 3600
AZURE_PROBE_MIN_S = 5
"""The Azure load balancer probe's smallest intervalInSeconds."""
GCP_CHECK_MAX_S = 300
"""The GCP health check's largest checkIntervalSec and timeoutSec (both whole seconds from 1)."""
ARMOR_INTERVALS_S = (10, 30, 60, 120, 180, 240, 300, 600, 900, 1200, 1800, 2700, 3600)
"""Cloud Armor's accepted rate-limit intervals (https://cloud.google.com/armor/docs/rate-limiting-overview)."""

# Scalars are strict (a quoted "4000" is a wrong type, not a port); containers and CIDRs are parsed.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Count = Annotated[int, Field(ge=1, strict=True)]
Text = Annotated[str, Field(min_length=1, strict=True)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$", strict=True)]
GcpZone = Annotated[str, Field(pattern=r"^[a-z]$", strict=True)]
AzureZone = Literal["1", "2", "3"]
Cidr = ipaddress.IPv4Network


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_T = TypeVar("_T", bound=_Frozen)


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", strict=True)]


class ServerSettings(_Frozen):
    """The API server the VMs run (`drainctl:app.server`): a command already on the image (`{command}`; the boot
    script checks it is executable), or an archive the stack uploads like the wheelhouse (`{artifact, sha256,
    command}`: a .tar.gz, checked against `sha256` at plan time and at boot, extracted into /opt/app)."""

    command: Text
    """ExecStart of the API server's systemd unit; its first word must be an absolute path."""
    artifact: Path | None = None
    """The archive to upload, relative to the repository root (or absolute)."""
    sha256: Sha256 | None = None

    @model_validator(mode="after")
    def _complete(self) -> ServerSettings:
        if (self.artifact is None) != (self.sha256 is None):
            raise ValueError("artifact and sha256 go together (the archive and the hash it must have)")
        words = shlex.split(self.command)
        if not words or not words[0].startswith("/"):
            raise ValueError(f"command must start with an absolute path, got {self.command!r}")
        return self


_REPLACED_APP_KEYS = {
    "api_server_command": "server: {command: ...}",
    "drainctl_package": "nothing: every VM installs drainctl from the stack's own wheelhouse (`make dist`)",
}


class AppSettings(_Frozen):
    """What runs on every API server, and where it listens."""

    server: ServerSettings
    """The API server (the portal in production, the reference server from the drainctl wheel in staging)."""
    app_port: Port = 4000
    """WebSockets, `/healthz`, `/readyz` and `/metrics` on every API server."""
    drain_url: Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.:\[\]/_-]+$", strict=True)] = "http://127.0.0.1:4001/admin/drain"
    """The app's own drain hook; the agent posts here (agent.yaml `app.drain_url`)."""
    not_ready_url: Annotated[str, Field(pattern=r"^https?://[A-Za-z0-9.:\[\]/_-]+$", strict=True)] | None = None
    """The app's not-ready hook (agent.yaml `app.not_ready_url`): the drain's out-of-rotation step turns `/readyz`
    503 through it, then waits for the load balancer before the first socket closes (issue 15). None: the app has
    none, and every drain closes at once, as before (the reference server has `/admin/not-ready`)."""
    agent_port: Port = 9100
    """The node agent's API; open to the controller only."""
    tls_port: Port = 4443
    """Azure only: where the VM's TLS terminator (HAProxy, certificate from Key Vault) listens; the L4 load
    balancer forwards 443 here. Health probes stay on the plain app port."""
    domain: Annotated[str, Field(pattern=r"^[a-z0-9.-]+\.[a-z]+$", strict=True)]
    """Public hostname of the API, for the managed certificate."""

    @model_validator(mode="before")
    @classmethod
    def _replaced_keys(cls, data: Any) -> Any:
        for key, replacement in _REPLACED_APP_KEYS.items():
            if isinstance(data, Mapping) and key in data:
                raise ValueError(f"{key} was replaced by {replacement} (see docs/infra.md)")
        return data


class RateLimit(_Frozen):
    """Cloud Armor throttle on the socket paths, per client IP."""

    count: Count
    """Connects allowed per client IP per window."""
    interval_s: Annotated[int, Field(strict=True)]
    """Window length; Cloud Armor's shortest is 10 s."""
    exceed_status: Literal[429, 502] = 502
    """Answer above the limit. 502, not 429: old clients treated 429 as fatal and stopped reconnecting."""

    @field_validator("interval_s")
    @classmethod
    def _armor_interval(cls, value: int) -> int:
        if value not in ARMOR_INTERVALS_S:
            raise ValueError(f"must be one of Cloud Armor's intervals {list(ARMOR_INTERVALS_S)} s, got {value}")
        return value


class GcpRegion(_Frozen):
    name: Name
    cidr: Cidr
    """The region's subnet in the stack's global VPC."""
    zones: Annotated[tuple[GcpZone, ...], Field(min_length=1)]
    """Zone suffixes the regional MIG distributes over (`[b, c, d]` -> europe-west1-b, -c, -d); pinned, because
    the MIG's fixed surge must be 0 or at least the number of zones and some regions have four."""
    machine_type: Text = "e2-standard-2"
    min_replicas: Count = 2
    max_replicas: Count = 4

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}-{zone}" for zone in self.zones)


class GcpSettings(_Frozen):
    project: Text
    regions: Annotated[tuple[GcpRegion, ...], Field(min_length=1)]
    image: Text = "debian-cloud/debian-12"
    websocket_lifetime_s: Count = 86_400
    """Backend-service timeout: on the external Application LB it caps every WebSocket's lifetime."""
    socket_rate_limit: RateLimit
    controller_machine_type: Text = "e2-small"
    private_services_cidr: Cidr = ipaddress.IPv4Network("10.30.0.0/16")
    """Cloud SQL's private services range, pinned: over the VPN Azure routes to it, so it must not overlap."""


class AzureImage(_Frozen):
    publisher: Text = "Debian"
    offer: Text = "debian-12"
    sku: Text = "12-gen2"
    version: Text = "latest"


class AzureRegion(_Frozen):
    name: Name
    cidr: Cidr
    """The region's VNet; carved into app, database and controller subnets (prefix + 4 each)."""
    vm_size: Text = "Standard_D2s_v5"
    capacity: Count = 2
    zones: Annotated[tuple[AzureZone, ...], Field(min_length=1)] = ("1", "2", "3")
    """Availability zones of the scale set (and of its zone-redundant frontend)."""


class AzureSettings(_Frozen):
    regions: Annotated[tuple[AzureRegion, ...], Field(min_length=1)]
    image: AzureImage = AzureImage()
    admin_username: Name = "drainctl"
    ssh_public_key: Annotated[str, Field(pattern=r"^(ssh-|ecdsa-)", strict=True)]
    """Public key for the admin user; password login is disabled."""
    controller_vm_size: Text = "Standard_B2s"


class DatabaseSettings(_Frozen):
    cloud: Literal["gcp", "azure"]
    """Where the primary and the same-cloud replicas live (Cloud SQL or Azure Database for PostgreSQL)."""
    primary_region: Name
    version: Literal[16, 17] = 17
    tier: Text
    """Cloud SQL tier (`db-custom-2-7680`) or Azure SKU name (`Standard_D2ds_v5`)."""
    azure_sku_tier: Literal["Burstable", "GeneralPurpose", "MemoryOptimized"] = "GeneralPurpose"
    storage_gb: Annotated[int, Field(ge=32, strict=True)] = 128
    name: Name = "drainctl"
    user: Name = "drainctl"


PositiveS = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ControllerCloudSettings(_Frozen):
    """What one cloud's controller pair is told beyond what the program derives (infra/rendered.py)."""

    lease_s: PositiveS = 15.0
    """The Postgres leader lease (controller.yaml `leader.lease_s`): a standby takes over after this long."""
    renew_s: PositiveS = 2.0
    """How often the holder renews (`leader.renew_s`); at most a third of lease_s."""
    sslmode: Literal["require", "prefer", "disable"] = "require"
    """libpq sslmode of the journal URL (Cloud SQL and Azure Flexible Server both serve TLS)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class GcpControllerSettings(ControllerCloudSettings):
    poll_interval_s: PositiveS = 5.0
    """`sources.gcp.poll_interval_s`: how often the MIGs are asked which instances are going away."""
    discovery_interval_s: PositiveS = 30.0
    """`sources.gcp.discovery.interval_s`: how often the MIGs' instances are listed (the inventory)."""


class AzureControllerSettings(ControllerCloudSettings):
    interval_s: PositiveS = 30.0
    """`sources.azure.interval_s`: how often the scale sets' VMs are listed (the inventory)."""


class ControllerSettings(_Frozen):
    """`drainctl:controller`: the controller pairs. Each cloud's pair gets only its own part (DESIGN.md §11)."""

    api_port: Port = DEFAULT_API_PORT
    """The controllers' API (on-call, the agents' pushes) on their static private addresses."""
    gcp: GcpControllerSettings = GcpControllerSettings()
    azure: AzureControllerSettings = AzureControllerSettings()

    @model_validator(mode="before")
    @classmethod
    def _no_old_settings(cls, raw: Any) -> Any:
        if isinstance(raw, Mapping) and "settings" in raw:
            raise ValueError(
                "`settings` (one controller.yaml for both clouds) is replaced by the per-cloud parts `gcp:` and "
                "`azure:` (docs/infra.md)"
            )
        return raw


@dataclass(frozen=True)
class StackConfig:
    """Everything a stack says, checked against the budget and the clouds' limits."""

    stack: str
    budget: Budget
    app: AppSettings
    gcp: GcpSettings | None
    azure: AzureSettings | None
    database: DatabaseSettings
    controller: ControllerSettings

    def regions(self, cloud: str) -> tuple[str, ...]:
        settings = self.gcp if cloud == "gcp" else self.azure
        return tuple(region.name for region in settings.regions) if settings else ()


_SECTIONS: dict[str, type[_Frozen]] = {
    "app": AppSettings,
    "gcp": GcpSettings,
    "azure": AzureSettings,
    "database": DatabaseSettings,
    "controller": ControllerSettings,
}
_REQUIRED = ("budget", "app", "database")


def load_stack_file(path: Path) -> StackConfig:
    """Read `stacks/Pulumi.<stack>.yaml` (its `config:` map) into a checked `StackConfig`."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("config"), Mapping):
        raise ConfigError(f"{path}: expected a stack file with a `config:` mapping")
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return parse(document["config"], stack=stack, where=str(path))


def from_pulumi_config(raw: Mapping[str, str], *, stack: str) -> StackConfig:
    """Parse the running program's config (values are strings; objects arrive JSON-encoded)."""
    decoded = {key: _decode(key, value) for key, value in raw.items()}
    return parse(decoded, stack=stack, where=f"stack {stack}")


def from_pulumi_runtime(*, stack: str) -> StackConfig:
    """The running program's config, as `pulumi up` hands it over (every key of every namespace)."""
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return from_pulumi_config(raw, stack=stack)


def parse(raw: Mapping[str, Any], *, stack: str, where: str) -> StackConfig:
    """The checked config; every problem is one `ConfigError` line: `<where>: drainctl:<key>...: <problem>`."""
    sections = _sections(raw, where)
    config = StackConfig(
        stack=stack,
        budget=_budget(sections["budget"], where),
        app=_section(AppSettings, sections, "app", where),
        gcp=_section(GcpSettings, sections, "gcp", where) if "gcp" in sections else None,
        azure=_section(AzureSettings, sections, "azure", where) if "azure" in sections else None,
        database=_section(DatabaseSettings, sections, "database", where),
        controller=_section(ControllerSettings, sections, "controller", where) if "controller" in sections else (
            ControllerSettings()
        ),
    )
    for problem in _cross_checks(config):
        raise ConfigError(f"{where}: {problem}")
    return config


def _sections(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    known = sorted(f"{NAMESPACE}:{name}" for name in ("budget", *_SECTIONS))
    for key, value in raw.items():
        namespace, sep, name = str(key).partition(":")
        if not sep:
            raise ConfigError(f"{where}: {key}: config keys are NAMESPACE:NAME (known: {', '.join(known)})")
        if namespace in PROVIDER_NAMESPACES:
            continue
        if namespace != NAMESPACE or (name != "budget" and name not in _SECTIONS):
            raise ConfigError(f"{where}: {key}: unknown key (known: {', '.join(known)})")
        sections[name] = value
    for name in _REQUIRED:
        if name not in sections:
            raise ConfigError(f"{where}: {NAMESPACE}:{name}: missing")
    if "gcp" not in sections and "azure" not in sections:
        raise ConfigError(f"{where}: {NAMESPACE}:gcp / {NAMESPACE}:azure: a stack needs at least one cloud")
    return sections


def _budget(raw: Any, where: str) -> Budget:
    key = f"{NAMESPACE}:budget"
    try:
        return Budget.from_mapping(raw, where=key)
    except BudgetError as exc:
        message = str(exc)
        raise ConfigError(f"{where}: {message if message.startswith(key) else f'{key}: {message}'}") from exc


def _section(model: type[_T], sections: Mapping[str, Any], name: str, where: str) -> _T:
    try:
        return model.model_validate(sections[name])
    except ValidationError as exc:
        first = exc.errors()[0]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {NAMESPACE}:{name}{path}: {message}") from exc


def _decode(key: str, value: str) -> Any:
    if key.startswith(f"{NAMESPACE}:") and value.lstrip().startswith(("{", "[")):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{key}: not valid JSON: {exc.msg}") from exc
    return value


def _cross_checks(config: StackConfig) -> list[str]:
    return [
        *_region_checks(config),
        *_database_checks(config),
        *_vpn_hub_checks(config),
        *_azure_timer_checks(config),
        *_gcp_timer_checks(config),
        *_controller_checks(config),
    ]


def _region_checks(config: StackConfig) -> list[str]:
    problems: list[str] = []
    networks: list[tuple[str, ipaddress.IPv4Network]] = []
    clouds: list[tuple[str, Sequence[GcpRegion | AzureRegion]]] = [
        ("gcp", config.gcp.regions if config.gcp else ()),
        ("azure", config.azure.regions if config.azure else ()),
    ]
    for cloud, regions in clouds:
        seen: set[str] = set()
        for index, region in enumerate(regions):
            key = f"{NAMESPACE}:{cloud}.regions[{index}]"
            if region.name in seen:
                problems.append(f"{key}.name: region {region.name!r} is listed twice")
            seen.add(region.name)
            networks.append((f"{key}.cidr", region.cidr))
            if len(set(region.zones)) != len(region.zones):
                problems.append(f"{key}.zones: a zone is listed twice")
            if isinstance(region, GcpRegion) and region.min_replicas > region.max_replicas:
                problems.append(
                    f"{key}.min_replicas ({region.min_replicas}) must be at most max_replicas ({region.max_replicas})"
                )
            if isinstance(region, AzureRegion) and region.cidr.prefixlen > 24:
                problems.append(f"{key}.cidr: {region.cidr} is too small; the VNet needs at least a /24")
    if config.gcp is not None and config.database.cloud == "gcp":
        networks.append((f"{NAMESPACE}:gcp.private_services_cidr", config.gcp.private_services_cidr))
    for (key_a, net_a), (key_b, net_b) in itertools.combinations(networks, 2):
        if net_a.overlaps(net_b):
            problems.append(f"{key_b}: {net_b} overlaps {key_a} ({net_a}); peered networks need distinct ranges")
    return problems


GATEWAY_SUBNET_MAX_PREFIX = 27
"""Azure's GatewaySubnet must be a /27 or larger; the hub VNet is carved in /(prefix+4) subnets
(https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub)."""


def _vpn_hub_checks(config: StackConfig) -> list[str]:
    """With both clouds the Azure hub carries the VPN gateway: its VNet must leave room for a /27 GatewaySubnet."""
    if not (config.gcp and config.azure):
        return []
    db = config.database
    hub = db.primary_region if db.cloud == "azure" else config.azure.regions[0].name
    for index, region in enumerate(config.azure.regions):
        if region.name == hub and region.cidr.prefixlen + 4 > GATEWAY_SUBNET_MAX_PREFIX:
            return [
                f"{NAMESPACE}:azure.regions[{index}].cidr: {region.cidr} is too small for the VPN hub: its "
                f"/{region.cidr.prefixlen + 4} subnets cannot hold the /27 GatewaySubnet (use /23 or larger)"
            ]
    return []


def _database_checks(config: StackConfig) -> list[str]:
    db = config.database
    home = config.regions(db.cloud)
    if db.primary_region not in home:
        return [
            f"{NAMESPACE}:database.primary_region: {db.primary_region!r} is not one of the stack's {db.cloud} "
            f"regions ({', '.join(home) or 'none'})"
        ]
    other = "azure" if db.cloud == "gcp" else "gcp"
    problems = []
    for index, region in enumerate(config.regions(other)):
        if proximity.nearest(other, region, home) is None:
            preferred = ", ".join(proximity.NEAREST[other].get(region, ())) or "no row in infra/proximity.py"
            problems.append(
                f"{NAMESPACE}:{other}.regions[{index}].name: no {db.cloud} database region is declared near "
                f"{region!r} (preferred: {preferred}; the stack has: {', '.join(home)})"
            )
    return problems


def _azure_timer_checks(config: StackConfig) -> list[str]:
    if config.azure is None:
        return []
    b, key = config.budget, f"{NAMESPACE}:budget"
    problems = []
    if not (AZURE_LB_IDLE_MIN_S <= b.lb_idle_timeout_s <= AZURE_LB_IDLE_MAX_S and b.lb_idle_timeout_s % 60 == 0):
        problems.append(
            f"{key}.lb_idle_timeout_s ({b.lb_idle_timeout_s:g}) must be whole minutes from "
            f"{AZURE_LB_IDLE_MIN_S} to {AZURE_LB_IDLE_MAX_S} s: the Azure Standard Load Balancer rule idle timeout"
        )
    if not (AZURE_NOTICE_MIN_S <= b.platform_notice_s <= AZURE_NOTICE_MAX_S and b.platform_notice_s % 60 == 0):
        problems.append(
            f"{key}.platform_notice_s ({b.platform_notice_s:g}) must be whole minutes from {AZURE_NOTICE_MIN_S} "
            f"to {AZURE_NOTICE_MAX_S} s: the Azure terminate notification (notBeforeTimeout PT5M-PT15M)"
        )
    if not (b.lb_check_interval_s >= AZURE_PROBE_MIN_S and float(b.lb_check_interval_s).is_integer()):
        problems.append(
            f"{key}.lb_check_interval_s ({b.lb_check_interval_s:g}) must be whole seconds, at least "
            f"{AZURE_PROBE_MIN_S}: the Azure load balancer probe's intervalInSeconds"
        )
    return problems


def _gcp_timer_checks(config: StackConfig) -> list[str]:
    if config.gcp is None:
        return []
    b, key = config.budget, f"{NAMESPACE}:budget"
    problems = []
    if not (b.platform_notice_s <= GCP_NOTICE_MAX_S and float(b.platform_notice_s).is_integer()):
        problems.append(
            f"{key}.platform_notice_s ({b.platform_notice_s:g}) must be whole seconds up to {GCP_NOTICE_MAX_S}: "
            "GCP graceful shutdown and backend connection draining stop at one hour"
        )
    for name in ("lb_check_interval_s", "lb_check_timeout_s"):
        value = getattr(b, name)
        if not (1 <= value <= GCP_CHECK_MAX_S and float(value).is_integer()):
            problems.append(
                f"{key}.{name} ({value:g}) must be whole seconds from 1 to {GCP_CHECK_MAX_S}: "
                "the GCP readiness health check's checkIntervalSec and timeoutSec"
            )
    lifetime = config.gcp.websocket_lifetime_s
    floor = max(b.lb_idle_timeout_s, b.platform_notice_s)
    if lifetime <= floor:
        problems.append(
            f"{NAMESPACE}:gcp.websocket_lifetime_s ({lifetime}) must be greater than lb_idle_timeout_s "
            f"({b.lb_idle_timeout_s:g}) and platform_notice_s ({b.platform_notice_s:g}): on the external "
            "Application LB it caps every WebSocket's lifetime, so a shorter cap turns the LB into a reconnect storm"
        )
    return problems


CONTROLLER_HOSTS = (250, 251)
"""GCP: the controllers' static addresses are these hosts of the hub region's subnet (infra/rendered.py)."""


def _controller_checks(config: StackConfig) -> list[str]:
    """Each cloud's part must belong to a cloud the stack has, and its lease must leave room for renewals."""
    key, controller = f"{NAMESPACE}:controller", config.controller
    problems = []
    for cloud in ("gcp", "azure"):
        part: ControllerCloudSettings = getattr(controller, cloud)
        if cloud in controller.model_fields_set and getattr(config, cloud) is None:
            problems.append(
                f"{key}.{cloud}: the stack has no {cloud} regions (drop the part or add {NAMESPACE}:{cloud})"
            )
        if part.renew_s * 3 > part.lease_s:
            problems.append(
                f"{key}.{cloud}.renew_s ({part.renew_s:g}) must be at most a third of lease_s ({part.lease_s:g}): "
                "the leader must renew several times before a standby may take over"
            )
    if config.gcp is not None:
        for index, region in enumerate(config.gcp.regions):
            if region.cidr.num_addresses < max(CONTROLLER_HOSTS) + 5:
                problems.append(
                    f"{NAMESPACE}:gcp.regions[{index}].cidr: {region.cidr} is too small: the controllers' static "
                    f"addresses are hosts {CONTROLLER_HOSTS} of the hub region's subnet (use a /24 or larger)"
                )
    return problems
