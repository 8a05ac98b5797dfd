"""The leader cut off from Postgres (packets dropped: half-open): when it stops, when the standby takes over.

    python -m bench.partition [RUNS]         # RUNS per lease/renew pair (default 3): 3 s / 1 s and 15 s / 5 s
                                             # needs root (ip netns, veth, nft)

Each run starts two `drainctl run` controllers on one real PostgreSQL (tests/support/postgres.py; a fresh
database per run), the leader in its own network namespace (tests/support/netns.py), asks it for a drain of
A (whose "agent" never answers, so the leader sits in `draining` and writes nothing), and then drops every
packet between the leader and Postgres's port, at a random point of the renew cycle. Figures from the cut:

- `stopped_s`: the cut-off leader's `/readyz` turns 503 (it has stopped acting; polled every 20 ms);
- `taken_s`: the standby's `/readyz` turns 200 (it has taken the expired lease and leads);
- `gap_s`: `taken_s - stopped_s`, the time with no leader; it must be positive in every run.

The bounds by construction: the leader stops at most `renew_deadline` (two thirds of the lease) after its
last renewal began, so `stopped_s` < 2/3 lease; the row expires `lease_s` after that renewal began, so the
standby cannot lead before `lease_s - renew_s` after the cut, and leads by `lease_s + renew_s`. Prints one
JSON line: p50 and max of each figure, and the smallest gap, per pair.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.failover import PAIRS_S, POLL_S, WAIT_S, _config, _ready, _silent_agent, _summary
from testbed.harness import ControllerProcess, Fleet
from testbed.harness.fleet import DRAINCTL
from testbed.harness.waiting import wait_for
from tests.support.budgets import TEST_BUDGET
from tests.support.netns import Namespace, namespace
from tests.support.postgres import PostgresServer


def _start_in(ns: Namespace, fleet: Fleet, config: dict[str, Any]) -> ControllerProcess:
    """`drainctl run` inside `ns`: its loopback addresses become our side of the veth."""
    config = json.loads(json.dumps(config).replace("127.0.0.1", ns.host_ip))
    port = config["api"]["listen"].rsplit(":", 1)[1]
    config["api"]["listen"] = f"{ns.inside_ip}:{port}"
    config["leader"]["advertise_url"] = f"http://{ns.inside_ip}:{port}"
    path = fleet.workdir / "controller-cut.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    process = fleet.start_command("controller-cut", ns.exec_argv([*DRAINCTL, "run", "--config", str(path)]))
    token = Path(config["api"]["token_file"]).read_text(encoding="utf-8").strip()
    return ControllerProcess(process, process.wait_event("ready", WAIT_S), token=token)


def _one_run(server: PostgresServer, ns: Namespace, database: str, lease_s: float,
             renew_s: float) -> dict[str, float]:
    url = server.create_database(database)
    with Fleet(TEST_BUDGET) as fleet:
        agent = _silent_agent()
        try:
            agent_url = "http://{}:{}".format(*agent.getsockname())
            configs = [_config(fleet, server, url, agent_url, f"ctl-{n}", lease_s, renew_s) for n in (1, 2)]
            leader = _start_in(ns, fleet, configs[0])
            wait_for(lambda: _ready(leader), timeout_s=WAIT_S, what="the controller in the namespace to lead")
            standby = fleet.start_controller(configs[1])
            leader.drain("A")
            wait_for(lambda: leader.instance("A")["drain"]["phase"] == "draining", timeout_s=WAIT_S,
                     what="A's drain to be requested")
            time.sleep(random.uniform(0.0, renew_s))  # waits for nothing: the cut's phase in the renew cycle
            cut_at = time.monotonic()
            ns.cut(server.port)
            try:
                wait_for(lambda: not _ready(leader), timeout_s=WAIT_S, what="the leader to stop",
                         interval_s=POLL_S)
                stopped_at = time.monotonic()
                wait_for(lambda: _ready(standby), timeout_s=WAIT_S, what="the standby to lead", interval_s=POLL_S)
                taken_at = time.monotonic()
            finally:
                ns.heal()
        finally:
            agent.close()
    stopped_s, taken_s = stopped_at - cut_at, taken_at - cut_at
    return {"stopped_s": stopped_s, "taken_s": taken_s, "gap_s": taken_s - stopped_s}


def run(runs: int = 3) -> list[dict[str, object]]:
    server = PostgresServer.start()
    results: list[dict[str, object]] = []
    try:
        with namespace("x") as ns:
            server.allow(ns.network)
            for lease_s, renew_s in PAIRS_S:
                samples = [_one_run(server, ns, f"partition_{lease_s:g}_{n}", lease_s, renew_s)
                           for n in range(runs)]
                results.append({
                    "lease_s": lease_s, "renew_s": renew_s, "renew_deadline_s": round(lease_s * 2 / 3, 3),
                    "runs": runs, "stopped_s": _summary([s["stopped_s"] for s in samples]),
                    "taken_s": _summary([s["taken_s"] for s in samples]),
                    "smallest_gap_s": round(min(s["gap_s"] for s in samples), 3),
                })
    finally:
        server.stop()
    return results


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 3
    print(json.dumps({"partition": run(runs)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
