"""Time to reset 10,000 WebSocket sockets of one reference server with TCP RSTs.

    .venv/bin/python -m bench.reset [--count 10000] [--runs 5]

One reference server holds `count` clients of one swarm (no HAProxy: it would need two descriptors per
socket, and this machine caps open files at 20,000 per process), with its node agent and the controller.
Each run resets every socket and times it from the caller's side, alternating two ways in:

- `agent`: `POST /v1/reset` on the node agent (the kernel socket destroy, `ss -K`, on the service port);
- `controller`: `POST /v1/instances/A/reset`, the operator's `drainctl reset` (API, engine, journal, agent).

After each run it checks the kernel count reached zero, then waits for the swarm to reconnect every client
before the next. Prints one JSON line: per way, every run's milliseconds and sockets reset.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for

RECONNECT_TIMEOUT_S = 600.0


def run(count: int, runs: int) -> dict[str, Any]:
    budget = Budget(drain_deadline_s=20.0, verify_s=5.0, margin_s=10.0, expected_sockets_per_server=count)
    timings: dict[str, list[dict[str, float | int]]] = {"agent": [], "controller": []}
    with Fleet(budget) as fleet:
        server = fleet.start_server("A")
        agent = fleet.start_agent(server)
        controller = fleet.start_controller(fleet.controller_config([agent]))
        swarm = fleet.start_swarm(server.ws_url, count=count, duration_s=3600, connect_rate_per_s=1000,
                                  heartbeat_timeout_s=0)
        swarm.wait_joined(timeout_s=RECONNECT_TIMEOUT_S)
        for index in range(runs):
            wait_for(lambda: server.open_sockets() == count, timeout_s=RECONNECT_TIMEOUT_S,
                     what=f"all {count} clients to be connected", interval_s=0.5)
            way = "agent" if index % 2 == 0 else "controller"
            started = time.perf_counter()
            if way == "agent":
                reset = int(agent.request("POST", "/v1/reset").json()["reset"])
            else:
                reset = int(controller.reset("A")["reset"])
            elapsed_ms = (time.perf_counter() - started) * 1000
            left = agent.connections()
            timings[way].append({"ms": round(elapsed_ms, 1), "reset": reset, "left_after": left})
        swarm.stop()
    return {
        "sockets": count,
        "runs": timings,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps({"reset": run(args.count, args.runs)}))


if __name__ == "__main__":
    main()
