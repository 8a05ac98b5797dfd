"""What the agent's platform watchers share: their metrics.

Per-source metrics (issue 4, item 4), in the agent's registry, so an alert can say "this host has not read its
Scheduled Events for a minute" before a missed notice does:

    drainctl_agent_source_polls_total{source}                      reads of the platform's notice endpoint
    drainctl_agent_source_errors_total{source, kind}               failed or unusable answers, by kind
    drainctl_agent_source_events_total{source, type}               platform events seen (each once), by type
    drainctl_agent_source_last_success_timestamp_seconds{source}   unix time of the last answer that was used

The pause after failed reads is drainctl's one backoff (controller/core/retrying.py): doubling from the
watcher's normal interval up to its cap, never shorter than what the platform asked for with Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter("drainctl_agent_source_polls", "Reads of the platform's notice endpoint.", ["source"],
                             registry=registry)
        self.errors = Counter("drainctl_agent_source_errors", "Failed or unusable platform answers, by kind.",
                              ["source", "kind"], registry=registry)
        self.events = Counter("drainctl_agent_source_events", "Platform events seen (each once), by type.",
                              ["source", "type"], registry=registry)
        self.last_success = Gauge("drainctl_agent_source_last_success_timestamp_seconds",
                                  "Unix time of the last platform answer the agent used.", ["source"],
                                  registry=registry)

    def of(self, source: str, *, clock: Callable[[], float] = time.time) -> WatchCounters:
        return WatchCounters(self, source, clock)


class WatchCounters:
    """One watcher's view: `polled()`, `failed(kind)`, `saw(type)`, `succeeded()`."""

    def __init__(self, metrics: WatchMetrics, source: str, clock: Callable[[], float]) -> None:
        self._metrics = metrics
        self._source = source
        self._clock = clock
        metrics.polls.labels(source)

    def polled(self) -> None:
        self._metrics.polls.labels(self._source).inc()

    def failed(self, kind: str) -> None:
        self._metrics.errors.labels(self._source, kind).inc()

    def saw(self, event_type: str) -> None:
        self._metrics.events.labels(self._source, event_type).inc()

    def succeeded(self) -> None:
        self._metrics.last_success.labels(self._source).set(self._clock())
