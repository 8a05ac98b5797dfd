"""The controller's own Prometheus metrics, in its own registry (served at the API's `/metrics`)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.core.models import Drain, Outcome, Phase

PHASE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.drains = Counter(
            "drainctl_drains", "Drains finished, by outcome: graceful, forced, failed.", ["outcome"],
            registry=self.registry,
        )
        self.failures = Counter(
            "drainctl_drain_failures", "Failed drains by cause (the error that made them fail).", ["cause"],
            registry=self.registry,
        )
        self.phase_seconds = Histogram(
            "drainctl_phase_duration_seconds", "Time spent in each phase of a drain.", ["phase"],
            buckets=PHASE_BUCKETS_S, registry=self.registry,
        )
        self.sockets_reset = Counter(
            "drainctl_sockets_reset", "Sockets reset with TCP RSTs by forced drains.", registry=self.registry
        )
        self.instances = Gauge(
            "drainctl_instances", "Instances whose latest drain is in each phase.", ["phase"], registry=self.registry
        )
        self.events = Counter(
            "drainctl_events", "Lifecycle events received, by source and what was done with them.",
            ["source", "disposition"], registry=self.registry,
        )
        for outcome in Outcome:
            self.drains.labels(outcome.value)
        self.count_phases([])

    def count_phases(self, latest: Iterable[Drain]) -> None:
        tally = Tally(d.phase for d in latest)
        for phase in Phase:
            self.instances.labels(phase.value).set(tally.get(phase, 0))
