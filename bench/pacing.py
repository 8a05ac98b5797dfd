"""Drain completion time for 5,000 sockets at a set rate, against the ideal N / rate.

    .venv/bin/python -m bench.pacing [--count 5000] [--rates 250,500,1000]

Per rate, a fresh fleet: servers A and B behind HAProxy, every client of one swarm on A (B out of rotation
while they join, then back), A's node agent and the controller. The drain is an operator's
`POST /v1/drains {"instance": "A", "rate_per_s": R}` with a deadline well past N / R, so nothing is forced.
Measured, each against the ideal N / R:

- `app_s`: from the drain request reaching the app (its log line) to the app's last socket closed (its
  admin count polled every 20 ms): the pacer itself;
- `controller_s`: from the API call to the journal's "verified zero" (kernel count 0): what an operator waits,
  including the controller's 0.25 s verification polls.

Prints one JSON line per run set; `error_percent` is (measured - ideal) / ideal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

from bench.latency import drain_request_times
from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for

JOIN_TIMEOUT_S = 600.0


def _percent(measured_s: float, ideal_s: float) -> float:
    return round(100 * (measured_s - ideal_s) / ideal_s, 1)


def run_one(count: int, rate_per_s: float) -> dict[str, Any]:
    ideal_s = count / rate_per_s
    budget = Budget(drain_deadline_s=max(30.0, 3 * ideal_s), verify_s=5.0, margin_s=10.0, drain_rate_per_s=rate_per_s,
                    expected_sockets_per_server=count, platform_notice_s=600.0)
    with Fleet(budget) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b])
        lb.set_server_state("B", "maint")
        agent = fleet.start_agent(a)
        controller = fleet.start_controller(fleet.controller_config([agent]))
        swarm = fleet.start_swarm(lb.ws_url, count=count, duration_s=3600, connect_rate_per_s=1000,
                                  heartbeat_timeout_s=0)
        swarm.wait_joined(timeout_s=JOIN_TIMEOUT_S)
        lb.set_server_state("B", "ready")
        lb.wait_state("B", "UP", timeout_s=60)
        before = a.open_sockets()
        called = time.time()
        drain_id = controller.drain("A", rate_per_s=rate_per_s, deadline_s=budget.drain_deadline_s)["drain"]["id"]
        wait_for(lambda: a.open_sockets() == 0, timeout_s=10 * ideal_s + 60, what="A to close every socket",
                 interval_s=0.02)
        emptied = time.time()
        controller.wait_phase("A", ["released", "failed"], timeout_s=120)
        detail = controller.drain_detail(drain_id)
        swarm.stop()
        received = drain_request_times(a.process.log_path)[0]
    verified = next(line["at"] for line in detail["journal"] if line["step"] == "verified zero")
    app_s, controller_s = emptied - received, verified - called
    return {
        "sockets": before,
        "rate_per_s": rate_per_s,
        "ideal_s": round(ideal_s, 2),
        "app_s": round(app_s, 2),
        "app_error_percent": _percent(app_s, ideal_s),
        "controller_s": round(controller_s, 2),
        "controller_error_percent": _percent(controller_s, ideal_s),
        "outcome": detail["drain"]["outcome"],
    }


def run(count: int, rates: list[float]) -> dict[str, Any]:
    return {
        "runs": [run_one(count, rate) for rate in rates],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rates", default="250,500,1000", help="comma-separated disconnects per second")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    print(json.dumps({"drain_pacing": run(args.count, rates)}))


if __name__ == "__main__":
    main()
