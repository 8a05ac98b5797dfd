"""The controller's own Prometheus metrics, in its own registry (served at the API's `/metrics`).

A synchronous listener (`controller.core.ports.Listener`): it keeps the count of every instance's latest phase
from what it hears, so the engine only announces and never counts. Metric names, labels and values are what
dashboards and alert rules (deploy/) read; they do not change when the engine does.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.core.announcements import Announcement, Journaled, Resumed, Taken
from controller.core.models import Drain, Outcome, Phase

PHASE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
MARGIN_BUCKETS_S = (0, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
"""Release margins: the `le="0"` bucket counts releases after the platform's deadline; the alert on
releases within the margin (deploy/prometheus/drainctl.rules.yml) reads the `le="10"` bucket."""


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
        self.out_of_rotation_seconds = Histogram(
            "drainctl_out_of_rotation_seconds",
            "The drain's first step, from the request to the first socket closed, by how it ended: observed "
            "(a load balancer stopped routing), timer (lb_deregistration_s passed), skipped.", ["how"],
            buckets=PHASE_BUCKETS_S, registry=self.registry,
        )
        self.release_margin = Histogram(
            "drainctl_release_margin_seconds",
            "Platform deadline minus release time of each released drain that held a platform.",
            buckets=MARGIN_BUCKETS_S, registry=self.registry,
        )
        self._phases: dict[str, Phase] = {}
        """The phase of each instance's latest episode."""
        for outcome in Outcome:
            self.drains.labels(outcome.value)
        self.count_phases([])

    def hear(self, announcement: Announcement) -> None:
        if isinstance(announcement, Journaled):
            self._journaled(announcement)
        elif isinstance(announcement, Taken):
            self.events.labels(announcement.event.source, announcement.disposition.value).inc()
        elif isinstance(announcement, Resumed):
            self.count_phases(announcement.drains)

    def count_phases(self, latest: Iterable[Drain]) -> None:
        """Set the phase gauge from the latest episode of every instance."""
        self._phases = {drain.instance: drain.phase for drain in latest}
        self._set_phases()

    def _journaled(self, announcement: Journaled) -> None:
        before, after = announcement.before, announcement.after
        if before is None or after.phase is not before.phase:
            self._moved(before, after)
        if after.outcome is not None and (before is None or before.outcome is None):
            self.drains.labels(after.outcome.value).inc()
        if announcement.cause is not None:
            self.failures.labels(announcement.cause).inc()
        self._rotated(announcement)
        reset = after.sockets_reset - (before.sockets_reset if before is not None else 0)
        if reset > 0:
            self.sockets_reset.inc(reset)
        self._released(before, after)

    def _released(self, before: Drain | None, after: Drain) -> None:
        """The release margin, once per episode, when its release is journaled (platform holds only)."""
        if after.released_at is None or not after.needs_release:
            return
        if before is None or before.released_at is None:
            self.release_margin.observe(after.not_after - after.released_at)

    def _rotated(self, announcement: Journaled) -> None:
        """The out-of-rotation step's journal line ("out of rotation (observed)"): how long it took."""
        line, requested = announcement.line, announcement.after.drain_requested_at
        if line.step.startswith("out of rotation (") and requested is not None:
            how = line.step.removeprefix("out of rotation (").rstrip(")")
            self.out_of_rotation_seconds.labels(how).observe(max(0.0, line.at - requested))

    def _moved(self, before: Drain | None, after: Drain) -> None:
        if before is not None:
            self.phase_seconds.labels(before.phase.value).observe(max(0.0, after.phase_since - before.phase_since))
        self._phases[after.instance] = after.phase
        self._set_phases()

    def _set_phases(self) -> None:
        tally = Tally(self._phases.values())
        for phase in Phase:
            self.instances.labels(phase.value).set(tally.get(phase, 0))
