"""Event-to-drain-start latency: from the event reaching the controller to the app receiving its drain request.

    .venv/bin/python -m bench.latency [--samples 200] [--pull-samples 20]

One reference server (no clients, so every drain verifies zero at once and the next can start), its node
agent and the controller, started with the fleet harness. For each sample the clock starts just before the
HTTP call that carries the event and stops at the timestamp the app writes when the drain request reaches it
(its log line "drain requested at", millisecond resolution, same machine clock):

- `manual`: `POST /v1/drains` (what `drainctl drain` sends);
- `local` (push): the testbed platform posts the notice to the agent, then (clock starts) `POST /v1/events`
  to the controller, as `testbed.harness.platform` does;
- `local_pull`: the notice is posted to the agent only and the controller finds it by polling the agents
  (`sources.local.poll_interval_s`, 1 s): bounded by the poll interval, shown for contrast. Each of these
  samples starts at a random phase of the poll (each waits for the previous drain, which ends just after a
  poll, so without it every sample would wait almost a whole interval).

Each sample waits for the previous drain to be released, so samples do not queue behind each other. Prints
one JSON line with p50/p90/p99/max per path, in milliseconds, and where the time went (`legs_ms`, from the
processes' own log lines): to the controller accepting the event (API and its journal write), to the drain
being requested (the reconcile pass and its journal write), to the agent, to the app.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.core.budget import Budget
from testbed.harness import AgentProcess, ControllerProcess, Fleet, ServerProcess
from testbed.harness.waiting import wait_for
from testbed.swarm.reporting import nearest_rank

DRAIN_LINE = "drain requested at"
LOG_TIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
TIMEOUT_S = 30.0
POLL_INTERVAL_S = 1.0
"""The controller's local-source poll of the agents (`sources.local.poll_interval_s`, the harness's default)."""


STAGES = {
    "accepted": ("controller", " from {source}; platform deadline"),
    "drain_requested": ("controller", "pending -> draining: drain requested"),
    "agent": ("agent", "drain requested by controller"),
}
"""Log lines (process, text) that mark each stage of one event's way to the app, in order."""


def log_times(log: Path, needle: str) -> list[float]:
    """Unix times of the log lines containing `needle` (asctime: local time, milliseconds, truncated)."""
    times = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if needle in line:
            stamp = datetime.datetime.strptime(line[:23], LOG_TIME_FORMAT)
            times.append(stamp.timestamp())
    return times


def drain_request_times(log: Path) -> list[float]:
    """Unix times of every drain request the app logged."""
    return log_times(log, DRAIN_LINE)


def _one(server: ServerProcess, controller: ControllerProcess, path: Route, index: int) -> tuple[float, float]:
    """When event `index` was sent and when the app logged the drain request it caused (unix seconds)."""
    log = server.process.log_path
    before = len(drain_request_times(log))
    prepare, send = path
    prepare(index)
    started = time.time()
    send(index)
    received = wait_for(lambda: drain_request_times(log)[before:] or None, timeout_s=TIMEOUT_S,
                        what="the app to log the drain request", interval_s=0.005)[0]
    controller.wait_phase(server.name, ["released"], timeout_s=TIMEOUT_S)
    return started, received


def _stages(samples: list[tuple[float, float]], logs: dict[str, Path], source: str) -> dict[str, float]:
    """p50 and p99 milliseconds of each leg (sent -> accepted -> drain requested -> agent -> app), from the
    processes' log lines (millisecond timestamps: a leg of "1 ms" may be anything from 0 to 2)."""
    marks = {stage: log_times(logs[process], needle.format(source=source))
             for stage, (process, needle) in STAGES.items()}
    legs: dict[str, list[float]] = {}
    for started, received in samples:
        times = [started]
        for stage in STAGES:
            times.append(next((t for t in marks[stage] if started - 0.001 <= t <= received + 0.001), float("nan")))
        times.append(received)
        names = ["to_" + stage for stage in STAGES] + ["to_app"]
        for name, earlier, later in zip(names, times[:-1], times[1:], strict=True):
            legs.setdefault(name, []).append(max(0.0, later - earlier) * 1000)
    known = {name: [v for v in values if v == v] for name, values in legs.items()}  # NaN: a line not found
    return {f"{name}_{q}": round(nearest_rank(values, percent) or 0.0, 1)
            for name, values in known.items() for q, percent in (("p50", 50), ("p99", 99))}


def _summary(values_s: list[float]) -> dict[str, float | int]:
    ms = [value * 1000 for value in values_s]
    return {
        "samples": len(ms),
        "p50_ms": round(nearest_rank(ms, 50) or 0, 1),
        "p90_ms": round(nearest_rank(ms, 90) or 0, 1),
        "p99_ms": round(nearest_rank(ms, 99) or 0, 1),
        "max_ms": round(max(ms, default=0), 1),
    }


Step = Callable[[int], None]
Route = tuple[Step, Step]
"""What happens before the clock starts (the platform's notice to the agent), and the event itself."""


def _paths(server: ServerProcess, agent: AgentProcess, controller: ControllerProcess) -> dict[str, Route]:
    not_after: dict[int, float] = {}

    def nothing(i: int) -> None:
        return None

    def manual(i: int) -> None:
        controller.drain(server.name, deadline_s=5)

    def notice(i: int) -> None:
        not_after[i] = time.time() + 60 + i
        agent.post_notice(f"push-{i}", "terminate", not_after[i])

    def push(i: int) -> None:
        controller.post_event(server.name, kind="terminate", not_after=not_after[i], notice_id=f"push-{i}")

    def random_phase(i: int) -> None:
        time.sleep(random.uniform(0, POLL_INTERVAL_S))  # not synchronization: a random phase against the poll

    def pull(i: int) -> None:
        agent.post_notice(f"pull-{i}", "terminate", time.time() + 600 + i)

    return {"manual": (nothing, manual), "local": (notice, push), "local_pull": (random_phase, pull)}


def run(samples: int, pull_samples: int) -> dict[str, Any]:
    budget = Budget(drain_deadline_s=5.0, verify_s=5.0, margin_s=10.0, expected_sockets_per_server=1000)
    results: dict[str, Any] = {}
    with Fleet(budget) as fleet:
        server = fleet.start_server("A")
        agent = fleet.start_agent(server, fallback={"grace_s": 30.0})
        controller = fleet.start_controller(fleet.controller_config([agent]))
        logs = {"controller": controller.log_path, "agent": agent.process.log_path}
        for path, route in _paths(server, agent, controller).items():
            count = pull_samples if path == "local_pull" else samples
            timed = [_one(server, controller, route, index) for index in range(count)]
            results[path] = _summary([received - started for started, received in timed])
            results[path]["legs_ms"] = _stages(timed, logs, "manual" if path == "manual" else "local")
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="per path (manual, local push)")
    parser.add_argument("--pull-samples", type=int, default=20, help="for the polled local path")
    args = parser.parse_args()
    print(json.dumps({"event_to_drain_start": run(args.samples, args.pull_samples)}))


if __name__ == "__main__":
    main()
