"""How many sockets one reference server process and one swarm process hold, and at what cost.

    .venv/bin/python -m bench.capacity [--count 10000] [--heartbeat-interval 10] [--window 30]

Starts one server and one swarm with the fleet harness (no load balancer: HAProxy needs two descriptors per
socket and this machine caps open files at 20,000 per process), waits until every client has joined, then
samples both processes' CPU and RSS over the same steady-state window of heartbeats. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from bench.procstat import measure
from controller.core.budget import Budget
from testbed.harness import Fleet


def run(count: int, heartbeat_interval_s: float, window_s: float) -> dict[str, object]:
    budget = Budget(heartbeat_interval_s=heartbeat_interval_s, heartbeat_timeout_s=3.5 * heartbeat_interval_s)
    with Fleet(budget) as fleet:
        server = fleet.start_server("A")
        swarm = fleet.start_swarm(server.ws_url, count=count, duration_s=3600, connect_rate_per_s=1000)
        started = time.monotonic()
        swarm.wait_joined(timeout_s=600)
        joined_s = time.monotonic() - started
        server_usage, swarm_usage = measure([server.pid, swarm.pid], window_s)
        open_sockets = server.open_sockets()
        report = swarm.stop()
    return {
        "clients": count,
        "heartbeat_interval_s": heartbeat_interval_s,
        "window_s": window_s,
        "joined_s": round(joined_s, 1),
        "server_open_sockets": open_sockets,
        "server_cpu_percent_of_core": round(server_usage.cpu_percent, 1),
        "server_rss_mib": round(server_usage.rss_mib),
        "swarm_cpu_percent_of_core": round(swarm_usage.cpu_percent, 1),
        "swarm_rss_mib": round(swarm_usage.rss_mib),
        "disconnects_during_run": len(report["disconnects"]),
        "connected_at_end": report["connected_at_end"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0, help="steady-state sampling window, seconds")
    args = parser.parse_args()
    print(json.dumps(run(args.count, args.heartbeat_interval, args.window)))


if __name__ == "__main__":
    main()
