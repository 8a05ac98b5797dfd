"""Failover time: from SIGKILL of the leader to the first action of the standby that takes over (issue 10).

    python -m bench.failover [RUNS]          # RUNS per lease/renew pair (default 3): 3 s / 1 s and 15 s / 5 s

Each run starts two `drainctl run` controllers on one real PostgreSQL (the harness's server,
tests/support/postgres.py; a fresh database per run) with `leader: {kind: postgres, ...}`, asks the leader
for a drain of instance A, and kills the leader with SIGKILL while that drain is in flight: A's "agent" is a
socket that accepts connections and never answers, so the leader sits in `draining` (drain requested, not
yet accepted) until the kill, which comes at a random point of the renew cycle. Two figures per run, from
the kill:

- `readyz_s`: the standby's `/readyz` turns 200 (polled every 20 ms: it leads);
- `first_write_s`: the first journal line the new leader writes (the episode's `resumed` step, by the
  controller's wall clock in `transitions.at`): it acts on the old leader's drain, without re-sending it.

The bound by construction is `lease_s + renew_s` (the old row expires at most `lease_s` after its last
renewal, and the standby tries every `renew_s`). Prints one JSON line: p50 and max of each figure per pair.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import sys
import time
from typing import Any

from testbed.harness import ControllerProcess, Fleet
from testbed.harness.ports import free_port
from testbed.harness.tokens import new_token_file
from testbed.harness.waiting import wait_for
from tests.support.budgets import TEST_BUDGET
from tests.support.postgres import PostgresServer

PAIRS_S = ((3.0, 1.0), (15.0, 5.0))
"""(lease_s, renew_s) pairs measured: the e2e tests' values and the docs' example."""
WAIT_S = 120.0
"""Generous bound on each wait: the machine is shared and may be busy."""
POLL_S = 0.02
"""How often `/readyz` is polled after the kill (the resolution of `readyz_s`)."""


def _silent_agent() -> socket.socket:
    """A listening socket nobody accepts from: the kernel completes the handshake and no answer ever comes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


def _config(fleet: Fleet, server: PostgresServer, url: str, agent_url: str, holder: str,
            lease_s: float, renew_s: float) -> dict[str, Any]:
    config = fleet.controller_config([])
    token_file = fleet.workdir / "agent.token"
    if not token_file.exists():
        new_token_file(token_file)
    listen = free_port()
    config.update(
        journal=url, journal_password_file=str(server.password_file),
        instances={"A": {"pool": "web", "agent_url": agent_url, "agent_token_file": str(token_file)}},
        agents={"timeout_s": 600.0},  # the leader waits on the silent agent until it is killed
        api={**config["api"], "listen": str(listen)},
        leader={"kind": "postgres", "holder": holder, "lease_s": lease_s, "renew_s": renew_s,
                "advertise_url": f"http://{listen}"},
    )
    return config


def _ready(controller: ControllerProcess) -> bool:
    return controller.request("GET", "/readyz").status_code == 200


def _first_write_after(server: PostgresServer, database: str, at: float) -> tuple[float, str] | None:
    """The first journal line written after `at`: its time and step."""
    sql = f"SELECT at, step FROM transitions WHERE at > {at!r} ORDER BY at LIMIT 1"
    found = server.psql(sql, database=database).strip()
    if not found:
        return None
    written_at, step = found.split("|", 1)
    return float(written_at), step


def _one_run(
    server: PostgresServer, database: str, lease_s: float, renew_s: float
) -> tuple[dict[str, float], str]:
    """One failover: the two figures, and the step of the new leader's first journal line."""
    url = server.create_database(database)
    with Fleet(TEST_BUDGET) as fleet:
        agent = _silent_agent()
        try:
            agent_url = "http://{}:{}".format(*agent.getsockname())
            configs = [_config(fleet, server, url, agent_url, f"ctl-{n}", lease_s, renew_s) for n in (1, 2)]
            leader = fleet.start_controller(configs[0])
            wait_for(lambda: _ready(leader), timeout_s=WAIT_S, what="the first controller to lead")
            standby = fleet.start_controller(configs[1])
            leader.drain("A")
            wait_for(lambda: leader.instance("A")["drain"]["phase"] == "draining", timeout_s=WAIT_S,
                     what="A's drain to be requested")
            time.sleep(random.uniform(0.0, renew_s))  # waits for nothing: the kill's phase in the renew cycle
            killed_at = time.time()
            leader.kill()
            wait_for(lambda: _ready(standby), timeout_s=WAIT_S, what="the standby to lead", interval_s=POLL_S)
            ready_at = time.time()
            first_at, step = wait_for(lambda: _first_write_after(server, database, killed_at),
                                      timeout_s=WAIT_S, what="the new leader's first journal line")
        finally:
            agent.close()
    return {"readyz_s": ready_at - killed_at, "first_write_s": first_at - killed_at}, step


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 3), "max": round(max(values), 3)}


def run(runs: int = 3) -> list[dict[str, object]]:
    server = PostgresServer.start()
    results: list[dict[str, object]] = []
    try:
        for lease_s, renew_s in PAIRS_S:
            done = [_one_run(server, f"failover_{lease_s:g}_{n}", lease_s, renew_s) for n in range(runs)]
            samples = [figures for figures, _ in done]
            results.append({
                "lease_s": lease_s, "renew_s": renew_s, "bound_s": lease_s + renew_s, "runs": runs,
                "readyz_s": _summary([s["readyz_s"] for s in samples]),
                "first_write_s": _summary([s["first_write_s"] for s in samples]),
                "first_steps": sorted({step for _, step in done}),
            })
    finally:
        server.stop()
    return results


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 3
    print(json.dumps({"failover": run(runs)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
