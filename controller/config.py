"""controller.yaml, parsed once at the edge into frozen, typed objects.

Everything inside the controller takes these objects, never raw dicts. Unknown keys, wrong types, unreadable
token files and timer budgets that break an invariant are refused with one line naming the key, e.g.
`controller.yaml: instances.A.pool: Field required`. Token files are read here; the tokens are `SecretStr`
so they never show up in a repr or a log line.

    journal: /var/lib/drainctl/journal.sqlite
    budget: {drain_deadline_s: 30, no_progress_window_s: 3}      # overrides of controller.budget.Budget
    prometheus:                                                   # optional: without it, kernel count only
      url: http://127.0.0.1:9090
      query: 'sum(drainctl_testbed_open_sockets{server="{instance}"})'
    disruption: {default_max_draining: 1, pools: {web: {max_draining: 2}}}
    instances:
      A: {pool: web, agent_url: http://10.0.0.5:9100, agent_token_file: /etc/drainctl/agent.token}
    agents: {timeout_s: 3.0}
    api: {listen: 127.0.0.1:9300, token_file: /etc/drainctl/api.token}
    sources: {local: {enabled: true, poll_interval_s: 1.0}, manual: {enabled: true}}
    # sources.kubernetes: {enabled: true, namespace: api, label_selector: app=api, agent_port: 9100,
    #                      agent_token_file: /etc/drainctl/agent.token, hold: finalizer}
    # leader: {kind: lease, namespace: api, name: drainctl, lease_duration_s: 15, renew_s: 2}
    # sources.gcp: {enabled: true, project: p, groups: [{region: us-central1, name: api}], auth: adc,
    #               poll_interval_s: 5, window_s: 600}
    engine: {poll_interval_s: 0.5, retry_initial_s: 0.5, retry_max_s: 5.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    model_validator,
)

from controller.budget import Budget
from controller.errors import ConfigError

DEFAULT_QUERY = 'sum(drainctl_testbed_open_sockets{server="{instance}"})'
INSTANCE_PLACEHOLDER = "{instance}"


def read_token(path: Path | str) -> str:
    """The stripped contents of a token file; ValueError (named by the caller's key) when unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    if not token:
        raise ValueError(f"{str(path)!r} is empty")
    return token


def _budget(value: Any) -> Budget:
    if isinstance(value, Budget):
        return value
    return Budget.from_mapping(value if value is not None else {}, where="budget")


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"malformed URL {value!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def _hostport(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return value


TokenFile = Annotated[SecretStr, BeforeValidator(read_token)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Seconds = Annotated[float, AfterValidator(_positive)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class PrometheusConfig(_Frozen):
    url: HttpUrl
    """Prometheus base URL, e.g. http://127.0.0.1:9090."""
    query: str = DEFAULT_QUERY
    """PromQL giving one instance's open sockets; `{instance}` is replaced by the instance name."""
    timeout_s: Seconds = 2.0
    """Per query; a slower Prometheus counts as unreachable and the kernel count is used alone."""

    @model_validator(mode="after")
    def _query_names_the_instance(self) -> PrometheusConfig:
        if INSTANCE_PLACEHOLDER not in self.query:
            raise ValueError(f"query must contain {INSTANCE_PLACEHOLDER} (replaced by the instance name)")
        return self

    def query_for(self, instance: str) -> str:
        quoted = instance.replace("\\", "\\\\").replace('"', '\\"')
        return self.query.replace(INSTANCE_PLACEHOLDER, quoted)


class PoolBudget(_Frozen):
    """How many of a pool's instances may be draining at once: a count, or a percentage of the pool."""

    max_draining: int | None = Field(default=None, ge=1)
    max_draining_percent: float | None = Field(default=None, gt=0, le=100)

    @model_validator(mode="after")
    def _exactly_one(self) -> PoolBudget:
        if (self.max_draining is None) == (self.max_draining_percent is None):
            raise ValueError("give exactly one of max_draining and max_draining_percent")
        return self

    def slots(self, pool_size: int) -> int:
        """At least one, so a pool can always make progress."""
        if self.max_draining is not None:
            return self.max_draining
        assert self.max_draining_percent is not None
        return max(1, math.floor(pool_size * self.max_draining_percent / 100))


class DisruptionConfig(_Frozen):
    default_max_draining: int = Field(default=1, ge=1)
    """For pools not listed under `pools`."""
    pools: Mapping[str, PoolBudget] = Field(default_factory=dict)


class InstanceConfig(_Frozen):
    pool: str = Field(min_length=1)
    agent_url: HttpUrl
    """The node agent's base URL (its HTTP API, DESIGN.md §6)."""
    agent_token: TokenFile = Field(alias="agent_token_file")
    """Read from `agent_token_file`; never logged."""


class AgentsConfig(_Frozen):
    timeout_s: Seconds = 3.0
    """Per agent request. Longer than the agent's own app timeout, so a stopped app shows as the agent's 504."""


class ApiConfig(_Frozen):
    listen: Annotated[str, AfterValidator(_hostport)] = "127.0.0.1:9300"
    token: TokenFile = Field(alias="token_file")


class LocalSourceConfig(_Frozen):
    enabled: bool = True
    poll_interval_s: Seconds = 1.0
    """How often each agent's notices are read."""


class ManualSourceConfig(_Frozen):
    enabled: bool = True


FINALIZER_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class KubernetesSourceConfig(_Frozen):
    """Pods being deleted, by list+watch of the API server (docs/platforms.md, Kubernetes)."""

    enabled: bool = False
    api_url: HttpUrl | None = None
    """The API server (also used for the leader Lease); None: in-cluster service account, else kubeconfig."""
    namespace: str = Field(default="default", min_length=1)
    label_selector: str = ""
    """Which pods are API servers, e.g. `app=api`; empty: every pod of the namespace."""
    pool: str = Field(default="kubernetes", min_length=1)
    """Disruption-budget pool of the pods (`disruption.pools`)."""
    agent_port: int = Field(default=9100, ge=1, le=65535)
    """The node agent sidecar listens on this port of the pod IP."""
    agent_token: TokenFile | None = Field(default=None, alias="agent_token_file")
    """Bearer token of the pods' agents; required when enabled. Never logged."""
    finalizer: Annotated[str, Field(pattern=FINALIZER_NAME)] = "drainctl.io/drain"
    hold: Literal["finalizer", "prestop"] = "finalizer"
    """finalizer: on every ready pod, removed on release. prestop: release the agent notice the pod's blocking
    preStop hook waits on (no finalizer is added)."""
    watch_timeout_s: Seconds = 300.0
    """Each watch request asks the server to end it after this long; it is then resumed."""
    request_timeout_s: Seconds = 10.0
    retry_max_s: Seconds = 10.0
    """Longest backoff between failed lists/watches."""
    overdue_s: Seconds = 60.0
    """A pod still carrying our finalizer this long after its deletionTimestamp is let go (never hold forever)."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> KubernetesSourceConfig:
        if self.enabled and self.agent_token is None:
            raise ValueError("agent_token_file is required when the kubernetes source is enabled")
        return self


class GcpGroupConfig(_Frozen):
    region: str = Field(min_length=1)
    name: str = Field(min_length=1)
    """A regional managed instance group of API servers."""


class GcpSourceConfig(_Frozen):
    """Managed instances of regional MIGs being taken away, by polling (docs/platforms.md, GCP)."""

    enabled: bool = False
    project: str | None = Field(default=None, min_length=1)
    groups: tuple[GcpGroupConfig, ...] = ()
    api_url: HttpUrl = "https://compute.googleapis.com"
    """The Compute Engine API (a fake on loopback in tests)."""
    auth: Literal["adc", "credentials_file", "token", "anonymous"] = "adc"
    """adc: Application Default Credentials (the VM's service account, GOOGLE_APPLICATION_CREDENTIALS);
    credentials_file: the key file `credentials_file`; token: the bearer token in `token_file`; anonymous: none."""
    credentials_file: Path | None = None
    token: TokenFile | None = Field(default=None, alias="token_file")
    """Never logged."""
    poll_interval_s: Seconds = 5.0
    window_s: Seconds = 600.0
    """The graceful-shutdown window assumed when a managed instance carries no shutdownDetails (GCP default 10 min)."""
    request_timeout_s: Seconds = 10.0
    page_size: int = Field(default=500, ge=1, le=500)
    retry_max_s: Seconds = 30.0
    """Longest wait between retries of a failing list (at least what Retry-After asks)."""

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> GcpSourceConfig:
        if self.enabled and (self.project is None or not self.groups):
            raise ValueError("project and groups are required when the gcp source is enabled")
        if self.auth == "credentials_file" and self.credentials_file is None:
            raise ValueError("auth credentials_file needs credentials_file: PATH")
        if self.auth == "token" and self.token is None:
            raise ValueError("auth token needs token_file: PATH")
        return self


class SourcesConfig(_Frozen):
    local: LocalSourceConfig = LocalSourceConfig()
    manual: ManualSourceConfig = ManualSourceConfig()
    kubernetes: KubernetesSourceConfig = KubernetesSourceConfig()
    gcp: GcpSourceConfig = GcpSourceConfig()


class LeaderConfig(_Frozen):
    """Only the holder of a Lease acts (`controller/leader.py`); the API server is `sources.kubernetes.api_url`."""

    kind: Literal["lease"] = "lease"
    namespace: str = Field(min_length=1)
    name: str = Field(default="drainctl", min_length=1)
    identity: str | None = Field(default=None, min_length=1)
    """This replica's holderIdentity; None: the host name (the pod name) and a random suffix."""
    lease_duration_s: Seconds = 15.0
    """A standby takes over when the lease was not renewed for this long."""
    renew_s: Seconds = 2.0
    """How often the holder renews and standbys look; at most a third of lease_duration_s."""

    @model_validator(mode="after")
    def _renew_fits(self) -> LeaderConfig:
        if self.renew_s * 3 > self.lease_duration_s:
            raise ValueError(
                f"renew_s ({self.renew_s:g}) must be at most a third of lease_duration_s ({self.lease_duration_s:g}): "
                "the holder must get several renewals in before it has to stop acting"
            )
        return self


class EngineConfig(_Frozen):
    poll_interval_s: Seconds = 0.5
    """How often a draining instance's sockets are counted."""
    retry_initial_s: Seconds = 0.5
    """First retry delay after a temporary error; doubles up to `retry_max_s`."""
    retry_max_s: Seconds = 5.0


class ControllerConfig(_Frozen):
    journal: Path
    """The SQLite journal file (created if missing)."""
    budget: Annotated[Budget, PlainValidator(_budget)] = Budget()
    prometheus: PrometheusConfig | None = None
    disruption: DisruptionConfig = DisruptionConfig()
    instances: Mapping[str, InstanceConfig] = Field(default_factory=dict)
    agents: AgentsConfig = AgentsConfig()
    api: ApiConfig | None = None
    sources: SourcesConfig = SourcesConfig()
    engine: EngineConfig = EngineConfig()
    leader: LeaderConfig | None = None
    """Several replicas (Kubernetes): only the Lease holder acts. None: this controller always acts."""

    def slots(self, pool: str) -> int:
        """The disruption budget of a pool: how many of its instances may drain at once."""
        budget = self.disruption.pools.get(pool)
        if budget is None:
            return self.disruption.default_max_draining
        return budget.slots(sum(1 for spec in self.instances.values() if spec.pool == pool))


def load_config(path: Path) -> ControllerConfig:
    """Read and validate controller.yaml; any problem is one `ConfigError` line naming the file and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return parse_config(raw, where=str(path))


def parse_config(raw: object, *, where: str = "controller.yaml") -> ControllerConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return ControllerConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_first_error(exc)}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{key}: {message}{more}"
