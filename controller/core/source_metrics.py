"""Per-source metrics (issue 4, item 4): how often each source asked its platform, how often that failed, how
many events it emitted, and when it last succeeded — so an alert can say "the Kubernetes watch has been failing
for 5 minutes" before a missed drain does.

    drainctl_source_polls_total{source}                       lists, watches, polls started
    drainctl_source_errors_total{source, kind}                failures by kind (unavailable, gone, malformed, ...)
    drainctl_source_events_total{source}                      lifecycle events emitted (before the engine dedupes)
    drainctl_source_last_success_timestamp_seconds{source}    unix time of the last answer that was used
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class SourceMetrics:
    """The metric families, shared by every source of one controller (one registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.polls = Counter(
            "drainctl_source_polls", "Requests a source made to its platform (a list, a watch, a poll).", ["source"],
            registry=self.registry,
        )
        self.errors = Counter(
            "drainctl_source_errors", "Failed or unusable answers a source got, by kind.", ["source", "kind"],
            registry=self.registry,
        )
        self.events = Counter(
            "drainctl_source_events", "Lifecycle events a source emitted (before the engine dedupes them).",
            ["source"], registry=self.registry,
        )
        self.last_success = Gauge(
            "drainctl_source_last_success_timestamp_seconds", "Unix time of the last platform answer a source used.",
            ["source"], registry=self.registry,
        )

    def of(self, source: str, *, clock: Callable[[], float] = time.time) -> SourceCounters:
        return SourceCounters(self, source, clock)


class SourceCounters:
    """One source's view of the metrics: `polled()`, `failed(kind)`, `emitted()`, `succeeded()`."""

    def __init__(self, metrics: SourceMetrics, source: str, clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._source = source
        self._clock = clock
        metrics.polls.labels(source)
        metrics.events.labels(source)

    def polled(self) -> None:
        self._metrics.polls.labels(self._source).inc()

    def failed(self, kind: str) -> None:
        self._metrics.errors.labels(self._source, kind).inc()

    def emitted(self) -> None:
        self._metrics.events.labels(self._source).inc()

    def succeeded(self) -> None:
        self._metrics.last_success.labels(self._source).set(self._clock())
