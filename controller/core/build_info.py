"""`drainctl_build_info{version}`: which drainctl a process runs, for dashboards and alerts (Prometheus's
`*_build_info` convention: a gauge of 1 whose labels carry the build). The controller and the agent export one."""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import CollectorRegistry, Gauge

PACKAGE = "drainctl"


def drainctl_version() -> str:
    """The installed package's version; "unknown" when run from a tree that was never installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "unknown"


def export_build_info(registry: CollectorRegistry, name: str = "drainctl_build_info") -> Gauge:
    """Register `name{version, python}` = 1 in `registry` (the agent's: `drainctl_agent_build_info`, so an
    alert on the controller's absence is not silenced by its agents)."""
    gauge = Gauge(
        name, "The running drainctl: 1, with its version and Python in labels.",
        ["version", "python"], registry=registry,
    )
    gauge.labels(drainctl_version(), platform.python_version()).set(1)
    return gauge
