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
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PlainValidator, ValidationError, create_model, model_validator

from controller.core.budget import Budget
from controller.core.errors import ConfigError
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
from controller.platforms import PLATFORMS

INSTANCE_PLACEHOLDER = "{instance}"


def _budget(value: Any) -> Budget:
    if isinstance(value, Budget):
        return value
    return Budget.from_mapping(value if value is not None else {}, where="budget")


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


class ApiConfig(Frozen):
    listen: HostPortField = HostPort("127.0.0.1", 9300)
    token: TokenFile = Field(alias="token_file")


if TYPE_CHECKING:
    SourcesConfig = Any
    LeaderConfig = Any
else:
    SourcesConfig = create_model(
        "SourcesConfig", __base__=Frozen, **{p.name: (p.settings, p.settings()) for p in PLATFORMS}
    )
    """One section per platform (`controller/platforms/__init__.py`), each defaulting to off."""
    _LEADERS = tuple(p.leader for p in PLATFORMS if p.leader is not None)
    LeaderConfig = _LEADERS[0] if len(_LEADERS) == 1 else Annotated[_LEADERS, Field(discriminator="kind")]
    """The `leader:` section: the kinds of leader election the platforms offer, told apart by `kind`."""


class ControllerConfig(Frozen):
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
    """Several replicas: only the leader acts (`kind: lease`, a Kubernetes Lease). None: this controller always
    acts."""

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
