"""The demo's picture: open sockets per server over time, one panel per run, written as a PNG.

matplotlib's object API on the Agg canvas (no display, no global pyplot state). Time zero is the first
lifecycle event; dotted lines mark each old server's event, dash-dotted lines each deletion, and a shaded band
the time the stopped server's clients got no answer: the incident's long flat line and the controller's
seconds-long drains read at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from testbed.scenarios.upgrading import NEW, OLD, ROLES, WEDGED, RunResult

COLORS = {"old1": "tab:blue", "old2": "tab:orange", "old3": "tab:red", "new": "tab:green"}
LEAD_S = 2.0
"""Seconds shown before the first event."""


def write_png(results: Sequence[RunResult], path: Path) -> Path:
    """One panel per run, same time axis; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(11, 3.6 * len(results)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(results), 1, sharex=True, squeeze=False)
    for axis, result in zip(axes[:, 0], results, strict=True):
        _panel(axis, result)
    end_s = max(r.ended_at - r.started_at for r in results)
    axes[-1, 0].set_xlim(-LEAD_S, end_s + 1)
    axes[-1, 0].set_xlabel("seconds since the first lifecycle event")
    figure.suptitle("drainctl demo: open sockets per server (kernel count) during a rolling replacement")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _panel(axis: Axes, result: RunResult) -> None:
    zero = result.started_at
    samples = [s for s in result.samples if s.at - zero >= -LEAD_S]
    times = [s.at - zero for s in samples]
    for name in OLD:
        axis.plot(times, [s.counts.get(name, 0) for s in samples], color=COLORS[name], linewidth=1.8,
                  label=f"{name} ({ROLES[name]})")
    axis.plot(times, [sum(s.counts.get(name, 0) for name in NEW) for s in samples], "--", color=COLORS["new"],
              linewidth=1.8, label="new1-new3 together")
    for name, at in result.events.items():
        axis.axvline(at - zero, color=COLORS[name], linestyle=":", linewidth=1)
    for retirement in result.retirements:
        if retirement.deleted_at is not None:
            axis.axvline(retirement.deleted_at - zero, color=COLORS[retirement.server], linestyle="-.", linewidth=1)
    if result.stopped_at is not None:
        wedged = next(r for r in result.retirements if r.server == WEDGED)
        until = wedged.deleted_at if wedged.deleted_at is not None else result.ended_at
        axis.axvspan(result.stopped_at - zero, until - zero, color=COLORS[WEDGED], alpha=0.12,
                     label=f"{WEDGED} stopped: its clients get no answer")
    outages = result.outages
    axis.set_title(f"{result.title}: clients offline max {outages.max_s:.1f} s, p99 {outages.p99_s:.1f} s, "
                   f"stuck at the end {outages.stuck_at_end}", fontsize=10)
    axis.set_ylabel("open sockets")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="center right")
