"""The agent's configuration file, parsed once at the edge into frozen objects.

A user mistake (unknown key, wrong type, unreadable token file) becomes one `ConfigError` line naming the
file and the key, e.g. `agent.yaml: fallback.grace_s: Input should be a valid number`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    ValidationError,
    field_validator,
    model_validator,
)

from controller.core.budget import Budget
from controller.core.errors import ConfigError
from controller.core.logs import LogConfig
from controller.core.settings import HostPort, HostPortField, first_error, load_yaml, read_token
from controller.notifying.config import WebhookList

_DEFAULTS = Budget()

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppConfig(_Frozen):
    """How the agent reaches the app's own drain hook (the testbed server's admin drain route)."""

    drain_url: str
    """`POST` here with `{"rate_per_s": R}` and the app's bearer token to start a graceful drain."""
    token_file: Path
    """File holding the app's admin bearer token. Never logged."""
    not_ready_url: str | None = None
    """`POST` here (same token) to turn the app not ready (`/readyz` 503) while it keeps its sockets: the
    drain's out-of-rotation step. None: the app has none, so the step is skipped."""
    timeout_s: PositiveSeconds = 2.0
    """A drain call unanswered after this long counts as timed out (a stopped or wedged app)."""

    @field_validator("drain_url", "not_ready_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class FallbackConfig(_Frozen):
    """The local fallback: drain, reset and release by itself when the controller stays silent."""

    enabled: bool = True
    grace_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 5.0
    """How long after a notice the agent waits for a controller drain before draining by itself."""
    drain_rate_per_s: PositiveSeconds = _DEFAULTS.drain_rate_per_s
    """Disconnects per second asked of the app when the agent drains by itself."""
    no_progress_window_s: PositiveSeconds = _DEFAULTS.no_progress_window_s
    """Reset what is left when the kernel count has not fallen for this long."""
    reset_margin_s: PositiveSeconds = 5.0
    """Reset and release no later than this long before the notice's `not_after`."""
    poll_s: PositiveSeconds = 0.25
    """How often the fallback looks at the kernel count and at the notice's state."""
    webhook_wait_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0
    """Before releasing, wait at most this long for the fallback's webhooks to be delivered (never past the
    deadline): a released host is deleted soon after (`webhooks:`, docs/operations.md)."""


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class LocalPlatform(_Frozen):
    """No platform notices but those posted to `POST /v1/notices` (the testbed supervisor)."""

    kind: Literal["local"] = "local"


class AzurePlatform(_Frozen):
    """Azure Scheduled Events from the instance metadata service (docs/platforms.md, Azure)."""

    kind: Literal["azure"]
    imds_url: HttpUrl = "http://169.254.169.254"
    resource_name: Annotated[str, Field(min_length=1)] | None = None
    """This VM's name as Scheduled Events lists it in `Resources`; None: IMDS `compute.name`, asked at start (the
    agent's `instance` when IMDS refuses)."""
    poll_s: PositiveSeconds = 1.0
    """How often the events document is read (Azure recommends about once a second)."""
    timeout_s: PositiveSeconds = 5.0
    retry_max_s: PositiveSeconds = 10.0
    """Longest wait after failed reads (at least what Retry-After asks)."""
    drain_on_freeze: bool = False
    """Freeze (a pause of seconds, memory-preserving maintenance) is reported; drained only when true."""


class GcpPlatform(_Frozen):
    """GCE guest metadata: `instance/preempted` and `instance/maintenance-event` (docs/platforms.md, GCP)."""

    kind: Literal["gcp"]
    metadata_url: HttpUrl = "http://metadata.google.internal"
    watch_timeout_s: PositiveSeconds = 60.0
    """Each hanging GET (`wait_for_change`) asks the server to answer after at most this long."""
    preempted_notice_s: PositiveSeconds = 30.0
    """A preempted VM is stopped this long after the flag flips (GCE: 30 s)."""
    maintenance_notice_s: PositiveSeconds = 60.0
    """A maintenance event starts this long after the value changes (GCE: 60 s)."""
    grace_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """How long the fallback waits for a controller drain on these short notices (0: drain at once)."""
    drain_on_migrate: bool = False
    """MIGRATE_ON_HOST_MAINTENANCE (live migration keeps the sockets) is reported; drained only when true."""
    retry_max_s: PositiveSeconds = 10.0


Platform = Annotated[LocalPlatform | AzurePlatform | GcpPlatform, Field(discriminator="kind")]


class PushConfig(_Frozen):
    """How the agent pushes each new notice to the controllers (`controllers:`; controller/agent/pushing.py)."""

    token_file: Path
    """File holding the push token (the controller's `api.push_token_file`): it reports notices, nothing else."""
    advertise_url: HttpUrl | None = None
    """Where the controller reaches this agent's API; None: http://<listen> (refused for a wildcard host)."""
    pool: Annotated[str, Field(min_length=1)] | None = None
    """This instance's pool, for a controller that learns the instance from the push."""
    timeout_s: PositiveSeconds = 2.0
    """Per push request."""
    retry_initial_s: PositiveSeconds = 0.5
    retry_max_s: PositiveSeconds = 10.0
    """Backoff between rounds over the controllers, doubling up to this (at least what Retry-After asks)."""


class HoldConfig(_Frozen):
    """The guest's shutdown hold (`drainctl agent hold`, `POST /v1/shutdown-hold`)."""

    window_s: PositiveSeconds = 90.0
    """The longest a shutdown is held; keep the unit's TimeoutStopSec above it."""


def _default_state_file() -> Path | None:
    """Under systemd with `StateDirectory=drainctl`: $STATE_DIRECTORY/agent-notices.json; else memory only."""
    directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(directory) / "agent-notices.json" if directory else None


class AgentConfig(_Frozen):
    """Everything `agent.yaml` holds."""

    listen: HostPortField = HostPort("127.0.0.1", 9100)
    """HOST:PORT of the agent's HTTP API (a host is required); port 0 lets the kernel choose (the ready line says
    which)."""
    token_file: Path
    """File holding the bearer token every route but /healthz requires. Never logged."""
    service_port: Annotated[int, Field(ge=1, le=65535)]
    """Established TCP sockets with this LOCAL port are the ones counted and reset."""
    service_address: IPvAnyAddress | None = None
    """Optional local address filter, for hosts where several services share the port."""
    app: AppConfig
    fallback: FallbackConfig = FallbackConfig()
    instance: Annotated[str, Field(min_length=1)]
    """This host's instance name, as the controller knows it."""
    platform: Platform = LocalPlatform()
    hold: HoldConfig = HoldConfig()
    webhooks: WebhookList = ()
    """Receivers of the fallback's notifications (`fallback.started`, `fallback.ended`; docs/operations.md)."""
    log: LogConfig = LogConfig()
    """Log format and level (`--log-format`, `--log-level` override them)."""
    state_file: Path | None = Field(default_factory=_default_state_file)
    """The notices, kept across restarts; default $STATE_DIRECTORY/agent-notices.json under systemd, else none."""
    controllers: tuple[HttpUrl, ...] = ()
    """The controllers' API base URLs (both of an HA pair, or one VIP) each new notice is pushed to; empty: no
    pushes (the controller's poll still finds the notices)."""
    push: PushConfig | None = None
    """Required with `controllers`."""

    @model_validator(mode="after")
    def _push_needs_a_token(self) -> AgentConfig:
        if self.controllers and self.push is None:
            raise ValueError("controllers: needs push: {token_file: ...} (the controller's push token)")
        wildcard = self.listen.host in ("", "0.0.0.0", "::")
        if self.controllers and self.push is not None and self.push.advertise_url is None and wildcard:
            raise ValueError("push.advertise_url: required when listen is a wildcard address")
        return self

    @property
    def advertise_url(self) -> str:
        """Where the controller calls this agent back."""
        if self.push is not None and self.push.advertise_url is not None:
            return self.push.advertise_url
        return f"http://{self.listen}"

    @field_validator("listen")
    @classmethod
    def _with_host(cls, value: HostPort) -> HostPort:
        if not value.host:
            raise ValueError(f"expected HOST:PORT, got {str(value)!r}")
        return value

    @property
    def listen_host(self) -> str:
        return self.listen.host

    @property
    def listen_port(self) -> int:
        return self.listen.port


@dataclass(frozen=True)
class AgentSettings:
    """The parsed config plus the secrets its token files hold."""

    config: AgentConfig
    token: str = field(repr=False)
    """Bearer token the agent's own API requires."""
    app_token: str = field(repr=False)
    """Bearer token for the app's drain hook."""
    push_token: str | None = field(default=None, repr=False)
    """Bearer token of the pushes to the controllers (None: no `push:` section)."""


def load_settings(path: Path) -> AgentSettings:
    """Read `agent.yaml` and the token files it names; every problem is a one-line `ConfigError`."""
    config = parse_config(load_yaml(path), where=str(path))
    return AgentSettings(
        config=config,
        token=read_token(config.token_file, where=f"{path}: token_file"),
        app_token=read_token(config.app.token_file, where=f"{path}: app.token_file"),
        push_token=None if config.push is None else read_token(config.push.token_file,
                                                               where=f"{path}: push.token_file"),
    )


def parse_config(raw: Any, *, where: str) -> AgentConfig:
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {first_error(exc)}") from exc


