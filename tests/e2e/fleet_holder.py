"""A harness process for the teardown tests: starts a fleet, prints what it holds, then waits to be stopped.

Run as a script: `python tests/e2e/fleet_holder.py`. Prints one JSON line
`{"pids": [...], "ports": ["127.0.0.1:PORT", ...], "workdir": PATH}` once everything is up.
"""

from __future__ import annotations

import json
import signal
import threading

from controller.core.budget import Budget
from testbed.harness import Fleet


def main() -> None:
    # Ctrl-C must reach this process as KeyboardInterrupt however the test run was started: a shell running it
    # in the background (`cmd &` without job control) starts it with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with Fleet(Budget()) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b])
        fleet.start_prometheus([a, b])
        fleet.start_swarm(lb.ws_url, count=20, duration_s=600).wait_joined(120)
        held = {"pids": fleet.pids, "ports": [str(p) for p in fleet.ports], "workdir": str(fleet.workdir)}
        print(json.dumps(held), flush=True)
        threading.Event().wait(600)  # until Ctrl-C (SIGINT) or SIGKILL


if __name__ == "__main__":
    main()
