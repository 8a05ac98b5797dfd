"""The metric names this code exports, collected from the registries themselves (not a list kept by hand), for
the tests that check the alert rules and the dashboard name only metrics that exist."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry

from controller.agent.metrics import AgentMetrics
from controller.core.build_info import export_build_info
from controller.core.source_metrics import SourceMetrics
from controller.hosts.reachability import AgentReachability
from controller.journal.counting import CountedJournal
from controller.listeners.draining import DrainingSockets
from controller.listeners.metrics import EngineMetrics
from testbed.server.metrics import ServerMetrics

OTHER_BRANCHES = frozenset({
    # Exported by work merged from other branches of wave 2 (issue 14 writes its rules against these names):
    "drainctl_leader", "drainctl_leader_epoch", "drainctl_journal_fenced_writes_total",  # branch ha
    "drainctl_discovery_last_success_timestamp_seconds", "drainctl_discovery_instances",  # branch discovery
})

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_NAME = re.compile(r"\b(drainctl_[a-z0-9_]+)\b")


def exported() -> frozenset[str]:
    """Every series name the controller, the agent and the reference server can expose."""
    controller = CollectorRegistry()
    EngineMetrics(controller)
    SourceMetrics(controller)
    AgentReachability(controller)
    export_build_info(controller)
    CountedJournal(_NoJournal(), controller)  # type: ignore[arg-type]
    controller.register(DrainingSockets(list))
    registries = [controller, AgentMetrics(service_port=8080).registry, ServerMetrics().registry]
    return frozenset(name for registry in registries for family in registry.collect()
                     for name in _names(family.name, family.type))


def named_in(expression: str) -> set[str]:
    """The drainctl metric names a PromQL expression reads."""
    return set(_NAME.findall(expression))


def _names(name: str, kind: str) -> tuple[str, ...]:
    suffixes = _SUFFIXES.get(kind)
    return (name,) if suffixes is None else tuple(name + suffix for suffix in suffixes)


class _NoJournal:
    """Only the counter's registration is wanted here."""

    def close(self) -> None:
        return None
