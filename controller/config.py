"""controller.yaml, parsed once at the edge into frozen, typed objects.

Everything inside the controller takes these objects, never raw dicts. Unknown keys, wrong types, unreadable
token files and timer budgets that break an invariant are refused with one line naming the key, e.g.
`controller.yaml: instances.A.pool: Field required`. Token files are read here; the tokens are `SecretStr`
so they never show up in a repr or a log line.

    journal: /var/lib/drainctl/journal.sqlite
    budget: {drain_deadline_s: 30, no_progress_window_s: 3}      # overrides of controller.core.budget.Budget
    prometheus:                                                   # optional: without it, kernel count only
      url: http://127.0.0.1:9090
      query: 'sum(app_open_websockets{host="{instance}"})'        # required: your app's gauge (docs/runbook.md)
    disruption: {default_max_draining: 1, pools: {web: {max_draining: 2}}}
    instances:
      A: {pool: web, agent_url: http://10.0.0.5:9100, agent_token_file: /etc/drainctl/agent.token}
    agents: {timeout_s: 3.0, max_in_flight: 64, token_file: /etc/drainctl/agent.token}  # one shared client
    api: {listen: 127.0.0.1:9300, token_file: /etc/drainctl/api.token,
          push_token_file: /etc/drainctl/push.token}      # agents push notices with this one (docs/agent.md)
    sources: {local: {enabled: true, poll_interval_s: 30.0, max_in_flight: 16}, manual: {enabled: true}}
    # sources.kubernetes: {enabled: true, namespace: api, label_selector: app=api, agent_port: 9100,
    #                      agent_token_file: /etc/drainctl/agent.token, hold: finalizer}
    # leader: {kind: lease, namespace: api, name: drainctl, lease_duration_s: 15, renew_s: 2}
    # sources.gcp: {enabled: true, project: p, groups: [{region: us-central1, name: api}], auth: adc,
    #               poll_interval_s: 5, window_s: 600,
    #               discovery: {enabled: true, interval_s: 30, agent_port: 9100,
    #                           agent_token_file: /etc/drainctl/agent-token}}
    # sources.azure: {enabled: true, scale_sets: [{subscription: S, resource_group: G, name: api}],
    #                 auth: managed_identity, interval_s: 30, agent_port: 9100,
    #                 agent_token_file: /etc/drainctl/agent-token}
    engine: {poll_interval_s: 0.5, retry_initial_s: 0.5, retry_max_s: 5.0}
    rotation: {enabled: true, haproxy: {socket: abns@haproxy-stats, backend: servers}}  # out of rotation first;
    #   the platforms' load balancers: sources.gcp.backend_health, sources.kubernetes.endpoints (docs/platforms.md)
    webhooks: [{name: oncall, url_file: /etc/drainctl/webhook.url}]   # docs/operations.md
    log: {format: json, level: info}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Field, PlainValidator, Tag, ValidationError, create_model, model_validator

from controller.core.budget import Budget
from controller.core.errors import ConfigError
from controller.core.logs import LogConfig
from controller.core.settings import (
    EngineConfig,
    Frozen,
    HostPort,
    HostPortField,
    HttpUrl,
    Seconds,
    TokenFile,
    first_error,
    load_yaml,
)
from controller.notifying.config import WebhookList
from controller.platforms import PLATFORMS

INSTANCE_PLACEHOLDER = "{instance}"


def _budget(value: Any) -> Budget:
    if isinstance(value, Budget):
        return value
    return Budget.from_mapping(value if value is not None else {}, where="budget")


def _leader_kind(value: Any, *, default: str) -> str | None:
    """The `leader:` section's union tag: its `kind`, or without one the first platform's kind (a Lease, as
    before there were two). Tags are `kind:<kind>`, not identifiers, so error paths read `leader: ...`."""
    if isinstance(value, dict):
        return f"kind:{value.get('kind', default)}"
    kind = getattr(value, "kind", None)
    return None if kind is None else f"kind:{kind}"


def _journal_location(value: Any) -> Path | str:
    """A URL stays text (a `Path` would fold its `//`); anything else is a file path."""
    if isinstance(value, str) and "://" in value:
        return value
    if isinstance(value, (str, Path)):
        return Path(value)
    raise ValueError("expected a file path or a postgresql:// URL")


class PrometheusConfig(Frozen):
    url: HttpUrl
    """Prometheus base URL, e.g. http://127.0.0.1:9090."""
    query: str
    """PromQL giving one instance's open sockets; `{instance}` is replaced by the instance name. Required: only
    the app knows its gauge and labels (the testbed's harness sets its own); without it no count would match."""
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


class PoolBudget(Frozen):
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


class DisruptionConfig(Frozen):
    default_max_draining: int = Field(default=1, ge=1)
    """For pools not listed under `pools`."""
    pools: Mapping[str, PoolBudget] = Field(default_factory=dict)

    def slots(self, pool: str, pool_size: int) -> int:
        """How many of a pool's `pool_size` instances may drain at once."""
        budget = self.pools.get(pool)
        return self.default_max_draining if budget is None else budget.slots(pool_size)


class InstanceConfig(Frozen):
    pool: str = Field(min_length=1)
    agent_url: HttpUrl
    """The node agent's base URL (its HTTP API, DESIGN.md §6)."""
    agent_token: TokenFile = Field(alias="agent_token_file")
    """Read from `agent_token_file`; never logged."""


class AgentsConfig(Frozen):
    timeout_s: Seconds = 3.0
    """Per agent request. Longer than the agent's own app timeout, so a stopped app shows as the agent's 504."""
    max_in_flight: int = Field(default=64, ge=1, le=10_000)
    """Requests to agents on the wire at once, whoever sends them (one shared client: hosts/pooling.py)."""
    max_keepalive: int = Field(default=16, ge=0, le=10_000)
    """Idle connections to agents kept open for their next request. Few: at fleet scale an idle connection is
    rarely the next one needed (the backstop reads each agent once a round), and httpcore's pool looks over
    every kept connection for each one at every request (quadratic: at 64 kept, ~3 % of a core at rest in the
    fleet benchmark); a drain's own calls reuse theirs while it runs."""
    keepalive_s: Seconds = 30.0
    """How long an idle connection is kept."""
    token: TokenFile | None = Field(default=None, alias="token_file")
    """The agents' token of instances the controller learns from their pushes (not in `instances:`); without
    it a push from an unknown instance is refused (the controller could not call it back)."""
    learned_pool: str = Field(default="default", min_length=1)
    """The pool of a learned instance whose push names none."""
    learned_ttl_s: Seconds = 600.0
    """A learned instance whose agent has not answered for this long (the backstop poll asks it every round)
    leaves the fleet once no drain of it is open; its next push teaches it again. Keep it at least two
    backstop intervals (`sources.local.poll_interval_s`), so one missed round does not forget a live host."""


class HaproxyRotationConfig(Frozen):
    """An HAProxy whose runtime API shows when it stopped routing to a server (servers named as instances)."""

    socket: str = Field(min_length=1)
    """Its stats socket: `abns@name` (abstract namespace) or a file path."""
    backend: str = Field(default="servers", min_length=1)


class RotationConfig(Frozen):
    """The drain's first step, out of rotation (controller/engine/rotating.py)."""

    enabled: bool = False
    """Turn the host not ready and wait for the load balancer before closing the first socket."""
    haproxy: HaproxyRotationConfig | None = None
    """Observe HAProxy instead of waiting the budget's whole `lb_deregistration_s`."""
    poll_s: Seconds = 0.1
    """How often an observed load balancer is asked during the step."""


class ApiConfig(Frozen):
    listen: HostPortField = HostPort("127.0.0.1", 9300)
    token: TokenFile = Field(alias="token_file")
    push_token: TokenFile | None = Field(default=None, alias="push_token_file")
    """The token agents push notices with (`POST /v1/pushes` only; never drains, resets or reads). None: the
    push route is off."""
    push_batch_max: int = Field(default=256, ge=1, le=10_000)
    """The most pushed notices journaled in one commit (group commit, controller/api/batching.py): each is
    answered once its commit is durable; a larger batch holds the event loop longer while it is written."""


if TYPE_CHECKING:
    SourcesConfig = Any
    LeaderConfig = Any
else:
    SourcesConfig = create_model(
        "SourcesConfig", __base__=Frozen, **{p.name: (p.settings, p.settings()) for p in PLATFORMS}
    )
    """One section per platform (`controller/platforms/__init__.py`), each defaulting to off."""
    _LEADERS = tuple(p.leader for p in PLATFORMS if p.leader is not None)
    _KINDS = tuple(str(model.model_fields["kind"].default) for model in _LEADERS)
    _TAGGED = tuple(Annotated[model, Tag(f"kind:{kind}")] for model, kind in zip(_LEADERS, _KINDS, strict=True))
    LeaderConfig = _LEADERS[0] if len(_LEADERS) == 1 else Annotated[
        Union[_TAGGED], Discriminator(  # noqa: UP007
            lambda value: _leader_kind(value, default=_KINDS[0]), custom_error_type="leader_kind",
            custom_error_message=f"kind must be one of {', '.join(_KINDS)}",
        )
    ]
    """The `leader:` section: the kinds of leader election the platforms offer, told apart by `kind`."""


class ControllerConfig(Frozen):
    journal: Annotated[Path | str, PlainValidator(_journal_location)]
    """The SQLite journal file (created if missing), or a `postgresql://` URL (a journal shared by two
    controllers, DESIGN.md §9; the URL must not hold the password)."""
    journal_password_file: Path | None = None
    """The Postgres journal's password, in a file (else libpq's PGPASSWORD / PGPASSFILE); never in the YAML."""
    budget: Annotated[Budget, PlainValidator(_budget)] = Budget()
    prometheus: PrometheusConfig | None = None
    disruption: DisruptionConfig = DisruptionConfig()
    instances: Mapping[str, InstanceConfig] = Field(default_factory=dict)
    agents: AgentsConfig = AgentsConfig()
    api: ApiConfig | None = None
    sources: SourcesConfig = SourcesConfig()
    engine: EngineConfig = EngineConfig()
    rotation: RotationConfig = RotationConfig()
    leader: LeaderConfig | None = None
    """Several replicas: only the leader acts (`kind: lease`, a Kubernetes Lease; `kind: postgres`, a lease row
    in the shared Postgres journal). None: this controller always acts."""
    webhooks: WebhookList = ()
    """Receivers of drain notifications (`controller/listeners/webhooks.py`, docs/operations.md)."""
    log: LogConfig = LogConfig()
    """Log format and level (`drainctl run --log-format/--log-level` override them)."""

    def slots(self, pool: str) -> int:
        """The disruption budget of a pool of static instances: how many of them may drain at once."""
        return self.disruption.slots(pool, sum(1 for spec in self.instances.values() if spec.pool == pool))


def load_config(path: Path) -> ControllerConfig:
    """Read and validate controller.yaml; any problem is one `ConfigError` line naming the file and key."""
    return parse_config(load_yaml(path), where=str(path))


def parse_config(raw: object, *, where: str = "controller.yaml") -> ControllerConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    try:
        return ControllerConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {first_error(exc)}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
