"""The drain engine: the level-triggered reconciler, its per-instance state machine, queue and budget.

Public surface (for the API, `drainctl run` and the on-call CLI):

    from controller.engine import Engine, assemble, Submission, InstanceStatus, DryRun, UnknownInstance

`running.Engine` is the facade; `reconciling` holds the state machine, `scheduling` the timers, `budgeting`
the disruption budget (earliest deadline first), `queueing` the work queue, `metrics` the controller's metrics,
`assembly` the wiring from controller.yaml. See docs/architecture.md.
"""

from __future__ import annotations

from controller.engine.assembly import Assembly, assemble
from controller.engine.clock import Clock, SystemClock
from controller.engine.metrics import EngineMetrics
from controller.engine.reconciling import Submission
from controller.engine.running import DryRun, Engine, InstanceStatus, ManualDisabled, UnknownInstance

__all__ = [
    "Assembly",
    "Clock",
    "DryRun",
    "Engine",
    "EngineMetrics",
    "InstanceStatus",
    "ManualDisabled",
    "Submission",
    "SystemClock",
    "UnknownInstance",
    "assemble",
]
