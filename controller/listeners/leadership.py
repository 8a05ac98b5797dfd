"""The leader election's metrics: which controller of a pair acts, with which epoch, and fenced writes.

Read when scraped (a collector, not a listener: leadership changes outside the engine's passes). The names
are what alert rules read (another engineer's rules depend on them): `drainctl_leader` (1 on the controller that
acts, 0 on a standby), `drainctl_leader_epoch` (the lease epoch this controller holds, 0 when it holds none)
and `drainctl_journal_fenced_writes_total` (journal writes the database refused because their epoch was not
the lease's current one: a deposed leader that tried to act). Without an election the controller always acts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.core.fencing import Fence
from controller.core.ports import LeaderElector


class LeaderMetrics(Collector):
    def __init__(self, registry: CollectorRegistry, leader: LeaderElector | None) -> None:
        self._leader = leader
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        leader = self._leader
        leading = leader is None or leader.leading
        yield GaugeMetricFamily("drainctl_leader", "1 while this controller is the leader (acts), else 0.",
                                value=1.0 if leading else 0.0)
        fence = getattr(leader, "fence", None)
        epoch = fence.epoch if isinstance(fence, Fence) else None
        refused = fence.refused_total if isinstance(fence, Fence) else 0
        yield GaugeMetricFamily("drainctl_leader_epoch", "The lease epoch this controller holds (0: none).",
                                value=float(epoch or 0))
        yield CounterMetricFamily("drainctl_journal_fenced_writes",
                                  "Journal writes refused because their lease epoch was not the current one.",
                                  value=float(refused))
