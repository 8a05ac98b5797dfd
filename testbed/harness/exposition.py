"""Reading one number out of a process's `/metrics` text (agents and the controller expose Prometheus text).

Tests and the demo count things at the source (drain requests the agent passed on, drains the controller
finished), so they parse the exposition with prometheus-client's own parser rather than by hand.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from controller.core.errors import PermanentError


def _sample_names(family: Metric) -> set[str]:
    """The sample names a family can have even before it has samples (a labelled counter starts empty)."""
    if family.type == "counter":
        return {family.name + "_total"}
    if family.type in ("gauge", "unknown", "untyped"):
        return {family.name}
    return {sample.name for sample in family.samples}


def metric_sum(text: str, name: str, labels: Mapping[str, str] | None = None, *, where: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`; 0.0 when none matches yet.

    A metric name the text does not declare at all is a `PermanentError` naming `where` (a typo in a test
    must not read as zero).
    """
    wanted = dict(labels or {})
    families = [f for f in text_string_to_metric_families(text) if name in _sample_names(f)]
    if not families:
        raise PermanentError(f"{where}: /metrics has no metric {name!r}")
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and wanted.items() <= sample.labels.items()
    )
