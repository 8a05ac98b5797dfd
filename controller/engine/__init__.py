"""The drain engine: the level-triggered reconciler, its per-instance state machine, queue and budget.

Public surface (for the API, `drainctl run` and the on-call CLI):

    from controller.engine import Engine, Submission, InstanceStatus, DryRun, UnknownInstance

`running.Engine` is the facade; `reconciling` holds the state machine, `triaging` the decision on each event,
`scheduling` the timers, `budgeting` the disruption budget (earliest deadline first), `queueing` the work queue,
`verifying` the zero-socket rule, `announcing` the listeners' seam (the metrics are a listener,
`controller/listeners/metrics.py`). The wiring from controller.yaml is the composition root, `controller/app.py`.
See docs/architecture.md.
"""

from __future__ import annotations

from controller.core.clocks import Clock, SystemClock
from controller.engine.reconciling import CancelRefused, Submission
from controller.engine.running import DryRun, Engine, InstanceStatus, ManualDisabled, UnknownInstance

__all__ = [
    "CancelRefused",
    "Clock",
    "DryRun",
    "Engine",
    "InstanceStatus",
    "ManualDisabled",
    "Submission",
    "SystemClock",
    "UnknownInstance",
]
