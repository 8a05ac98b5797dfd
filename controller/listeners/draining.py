"""`drainctl_draining_sockets{host, phase}`: the sockets still open on each instance being drained, read at
scrape time from the engine's status (the latest count of each running drain, which is not journaled).

A collector rather than a listener: the counts change on every verification pass, not on journal lines, and
the dashboard (deploy/grafana/) plots them per draining instance. Instances with no running drain, or whose
count is unknown, have no series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.core.models import Drain


class Counted(Protocol):
    @property
    def count(self) -> int | None: ...


class Status(Protocol):
    """What the collector reads of one instance's status (`Engine.status()`)."""

    @property
    def instance(self) -> str: ...

    @property
    def drain(self) -> Drain | None: ...

    @property
    def observation(self) -> Counted | None: ...


class DrainingSockets(Collector):
    """The open sockets of every running drain, from `statuses()` at each scrape."""

    def __init__(self, statuses: Callable[[], Iterable[Status]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "drainctl_draining_sockets", "Sockets still open on an instance being drained, at its latest count.",
            labels=["host", "phase"],
        )
        for status in self._statuses():
            drain, seen = status.drain, status.observation
            if drain is None or not drain.active or seen is None or seen.count is None:
                continue
            family.add_metric([status.instance, drain.phase.value], seen.count)
        yield family
