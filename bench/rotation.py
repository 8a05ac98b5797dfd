"""An operator's drain with and without the out-of-rotation step: refused reconnects and offline time.

    .venv/bin/python -m bench.rotation [--count 5000] [--js 0] [--modes off,timer,observed] [--balance roundrobin]

Per mode, a fresh fleet: servers A and B behind HAProxy, which learns of a drain only from `/readyz`
(checks every 300 ms, out after 2, 300 ms timeout: the budget's `lb_deregistration_s` is 0.9 s) and picks
a server for each new connection round robin, blind to open sockets, as GCP's backend services do by
default (Azure's load balancer hashes the 5-tuple, kube-proxy picks at random); every client (a swarm of
`--count`, plus `--js` official Phoenix JS clients) on A, then an operator's `POST /v1/drains
{"instance": "A"}` at 500 sockets/s. `--balance leastconn` is the testbed's default balancing: it never
sends a reconnect to A while A holds more sockets than B, so a drain without the step shows (almost) no
refusals there, which is why the first "before" run of this bench had none. Modes:

- `off`: no out-of-rotation step (issue 15's "before"): A turns not ready and starts closing at once;
- `timer`: A turns not ready, the first socket closes after `lb_deregistration_s`;
- `observed`: the same, ended as soon as HAProxy's runtime API shows A out of rotation.

Measured per mode: reconnects refused by the draining server (503 `draining`) and rate-limited ones (swarm
report and A's own counter), HAProxy's own 503s (`no_server_503`: no server in rotation) and how often its
checks took B out (`b_marked_down`: a survivor too busy to answer `/readyz` within the check timeout),
offline time p50/p99/max, P2 (disconnects offline longer than the client's first backoff, and longer than
it plus 100 ms: the acceptance's bound on p99), and when closing started after the drain request (the
journal's "drain accepted" minus "drain requested"). The first backoff is the swarm's 500 ms (its first
delay is drawn from 250-500 ms) and phoenix.js's 10 ms. The JS clients report their close codes (a refused
upgrade closes with 1006), refused upgrades (transport errors) and offline times (first close to the next
join). The swarm's own event-loop lag (`swarm_loop_lag_s`) is the instrument's error: each swarm offline
time may be that much too long. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
from pathlib import Path
from typing import Any, get_args

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.haproxy import Balance, LoadBalancer
from testbed.harness.supervising import Supervised
from testbed.harness.waiting import wait_for
from testbed.swarm.backoff import INITIAL_DELAY_S

JOIN_TIMEOUT_S = 600.0
RATE_PER_S = 500.0
JS_FIRST_BACKOFF_S = 0.010
"""phoenix.js's first reconnect delay (`reconnectAfterMs`: 10, 50, 100, ... ms; FACTS.md)."""
BOUND_S = 0.1
"""The acceptance's allowance over the first backoff for the offline p99 (issue 15)."""
PHOENIX_PEER = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "js" / "phoenix_peer.cjs"
BUDGET = Budget(drain_deadline_s=30.0, verify_s=5.0, margin_s=10.0, drain_rate_per_s=RATE_PER_S,
                expected_sockets_per_server=10_000, platform_notice_s=600.0, lb_check_interval_s=0.3,
                lb_unhealthy_threshold=2, lb_check_timeout_s=0.3)


def _nearest_rank(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(len(ordered) * percent / 100)
    return round(ordered[max(0, min(len(ordered), rank) - 1)], 3)


def _offline(values: list[float], first_backoff_s: float) -> dict[str, Any]:
    p99 = _nearest_rank(values, 99)
    return {
        "count": len(values),
        "p50_s": _nearest_rank(values, 50),
        "p99_s": p99,
        "max_s": round(max(values), 3) if values else None,
        "first_backoff_s": first_backoff_s,
        "p2_beyond_first_backoff": sum(1 for v in values if v > first_backoff_s),
        "p2_beyond_first_backoff_plus_100ms": sum(1 for v in values if v > first_backoff_s + BOUND_S),
        "p99_within_bound": None if p99 is None else p99 <= first_backoff_s + BOUND_S,
    }


def _js_summary(peers: list[Supervised]) -> dict[str, Any]:
    codes: dict[str, int] = {}
    errors, offline = 0, []
    for peer in peers:
        closed_at: float | None = None
        for event in peer.events():
            if event["event"] == "close":
                codes[str(event["code"])] = codes.get(str(event["code"]), 0) + 1
                closed_at = closed_at if closed_at is not None else float(event["at"])
            elif event["event"] == "error":
                errors += 1
            elif event["event"] == "joined" and closed_at is not None:
                offline.append(float(event["at"]) - closed_at)
                closed_at = None
    return {"clients": len(peers), "close_codes": codes, "refused_upgrades": errors,
            "offline": _offline(offline, JS_FIRST_BACKOFF_S)}


def _times_down(lb: LoadBalancer, server: str) -> int:
    """How often HAProxy took `server` out so far (`chkdown`; a `maint` counts too)."""
    rows = csv.DictReader(io.StringIO(lb.command("show stat").removeprefix("# ")))
    return sum(int(row.get("chkdown") or 0) for row in rows if row.get("svname") == server)


def run_one(count: int, js: int, mode: str, balance: Balance) -> dict[str, Any]:
    with Fleet(BUDGET) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b], balance=balance)
        lb.set_server_state("B", "maint")
        lb.wait_state("B", "MAINT")
        agent = fleet.start_agent(a)
        config = fleet.controller_config([agent])
        if mode != "off":
            config["rotation"] = {"enabled": True}
            if mode == "observed":
                config["rotation"]["haproxy"] = {"socket": lb.runtime_api}
        controller = fleet.start_controller(config)
        swarm = fleet.start_swarm(lb.ws_url, count=count, duration_s=3600, connect_rate_per_s=1000,
                                  heartbeat_timeout_s=0)
        peers = [fleet.start_command(f"phoenix-js-{i}", ["node", str(PHOENIX_PEER), lb.ws_url, f"js-{i}",
                                                          "30000", "room:js", "900"]) for i in range(js)]
        swarm.wait_joined(timeout_s=JOIN_TIMEOUT_S)
        for peer in peers:
            peer.wait_event("joined", timeout_s=JOIN_TIMEOUT_S)
        lb.set_server_state("B", "ready")
        lb.wait_state("B", "UP", timeout_s=60)
        total = count + js
        b_down_before = _times_down(lb, "B")  # the `maint` while the clients joined counts as one
        drain_id = controller.drain("A", rate_per_s=RATE_PER_S, deadline_s=BUDGET.drain_deadline_s)["drain"]["id"]
        wait_for(lambda: b.open_sockets() == total, timeout_s=10 * total / RATE_PER_S + 120,
                 what=f"all {total} clients on B", interval_s=0.1)
        controller.wait_phase("A", ["released", "failed"], timeout_s=120)
        lines = {line["step"]: line for line in controller.drain_detail(drain_id)["journal"]}
        report = swarm.stop()
        b_went_down = _times_down(lb, "B") - b_down_before
        refused_at_a = a.metric("drainctl_testbed_connects_rejected_total", {"reason": "draining"})
        js_summary = _js_summary(peers)
    rotated = next((line for step, line in lines.items() if step.startswith("out of rotation")), None)
    return {
        "mode": mode,
        "sockets": total,
        "refused_draining": report["refused_draining"],
        "refused_at_a": int(refused_at_a),
        "rate_limited": report["rate_limited"],
        "no_server_503": report.get("no_server_503"),
        "b_marked_down": b_went_down,
        "by_cause": report["by_cause"],
        "swarm_offline": _offline([d["offline_s"] for d in report["disconnects"] if d["offline_s"] is not None],
                                  INITIAL_DELAY_S),
        "swarm_loop_lag_s": report.get("loop_lag_s"),
        "js": js_summary,
        "closing_started_after_s": round(lines["drain accepted"]["at"] - lines["drain requested"]["at"], 3),
        "out_of_rotation": None if rotated is None else rotated["detail"],
    }


def run(count: int, js: int, modes: list[str], balance: Balance = "roundrobin") -> dict[str, Any]:
    return {
        "runs": [run_one(count, js, mode, balance) for mode in modes],
        "lb_deregistration_s": BUDGET.lb_deregistration_s,
        "balance": balance,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--js", type=int, default=0, help="official Phoenix JS clients besides the swarm")
    parser.add_argument("--modes", default="off,timer,observed")
    parser.add_argument("--balance", choices=get_args(Balance), default="roundrobin",
                        help="HAProxy's balancing: roundrobin as a cloud LB, or the testbed's default leastconn")
    args = parser.parse_args()
    print(json.dumps({"rotation": run(args.count, args.js, args.modes.split(","), args.balance)}))


if __name__ == "__main__":
    main()
