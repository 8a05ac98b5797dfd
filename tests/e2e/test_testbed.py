"""The testbed's acceptance lines (issue 2), each on real sockets through real HAProxy and Prometheus."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for
from testbed.phoenix import CLOSE_SERVICE_RESTART
from testbed.scenarios.draining import DrainScenario, run_drain

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]

FAST_HEARTBEATS = Budget(heartbeat_interval_s=1.0, heartbeat_timeout_s=3.0, lb_idle_timeout_s=600.0,
                         lb_check_interval_s=0.5, lb_check_timeout_s=0.5)  # HAProxy drops a wedged A fast
"""Short client timers for the wedged-server test; the LB idle timeout is longer than the test, so only the
clients' own heartbeat detection can free a socket on a stopped server."""
RECONNECT_BOUND_S = 6.0
"""Allowed on top of heartbeat interval + timeout for a client to notice a wedged server and rejoin B: a
backoff step, HAProxy marking A down (about 3 s) and a connect that may first hit A (connect timeout 2 s)."""


def test_draining_a_at_200_per_s_moves_all_1000_clients_to_b_with_1012(fleets: MakeFleet) -> None:
    outcome = run_drain(fleets(Budget()), DrainScenario(clients=1000, drain_rate_per_s=200.0))
    report = outcome.report

    assert outcome.before["A"] > 0 and outcome.before["A"] + outcome.before["B"] == 1000
    assert outcome.after == {"A": 0, "B": 1000}, "A must end with zero open sockets, B with every client"
    assert report["servers_at_end"] == {"B": 1000} and report["connected_at_end"] == 1000
    closes = outcome.drain_closes()
    assert sorted(d["client"] for d in closes) == sorted({d["client"] for d in closes}), "one 1012 per client"
    assert len(closes) == outcome.before["A"], "every client that was on A saw close code 1012"
    assert report["by_cause"] == {f"close:{CLOSE_SERVICE_RESTART}": outcome.before["A"]}
    assert report["rate_limited_max_per_client"] <= 1, "no client was refused more than once by the rate limiter"
    assert outcome.drained == outcome.before["A"]
    assert outcome.problems() == []


def test_ignore_drain_fault_leaves_the_sockets_open(fleets: MakeFleet) -> None:
    fleet = fleets(Budget())
    a, b = fleet.start_server("A", fault="ignore-drain"), fleet.start_server("B")
    lb = fleet.start_haproxy([a, b])
    swarm = fleet.start_swarm(lb.ws_url, count=100, duration_s=600)
    swarm.wait_joined(120)
    on_a, on_b = a.open_sockets(), b.open_sockets()
    assert on_a > 0 and on_b > 0

    a.drain(rate_per_s=1000)  # acknowledged...
    b.drain(rate_per_s=1000)  # ...and the healthy server, drained at the same moment, shows what should happen
    wait_for(lambda: b.open_sockets() == 0, timeout_s=120, what="the healthy server B to drain")
    wait_for(lambda: a.open_sockets() == 100, timeout_s=120, what="B's clients to reconnect to A")

    assert a.metric("drainctl_testbed_disconnects_total") == 0, "A closed none of its sockets"
    report = swarm.stop()
    assert report["servers_at_end"] == {"A": 100}
    assert [d for d in report["disconnects"] if d["server"] == "A"] == [], "no client of A was told to leave"
    assert {d["server"] for d in report["disconnects"]} == {"B"} and len(report["disconnects"]) == on_b


def test_wedged_server_clients_with_heartbeat_timeout_move_to_b_others_stay_stuck(fleets: MakeFleet) -> None:
    fleet = fleets(FAST_HEARTBEATS)
    a, b = fleet.start_server("A"), fleet.start_server("B")
    lb = fleet.start_haproxy([a, b])
    lb.set_server_state("B", "maint")  # every client starts on A, so the test knows who is on the wedged server
    lb.wait_state("B", "MAINT")
    detecting = fleet.start_swarm(
        lb.ws_url, count=20, duration_s=600, heartbeat_timeout_s=3.0, connect_timeout_s=2.0, token_prefix="detect"
    )
    blind = fleet.start_swarm(lb.ws_url, count=20, duration_s=600, heartbeat_timeout_s=0, token_prefix="blind")
    detecting.wait_joined(120)
    blind.wait_joined(120)
    assert a.open_sockets() == 40
    lb.set_server_state("B", "ready")
    lb.wait_state("B", "UP")

    stopped_at = time.time()
    a.pause()
    wait_for(lambda: b.open_sockets() == 20, timeout_s=120, what="the detecting clients to rejoin on B")
    found = detecting.stop()
    stuck = blind.stop()

    assert found["servers_at_end"] == {"B": 20}
    assert found["by_cause"] == {"heartbeat_timeout": 20}
    limit_s = FAST_HEARTBEATS.heartbeat_interval_s + 3.0 + RECONNECT_BOUND_S
    for disconnect in found["disconnects"]:
        assert disconnect["server"] == "A"
        rejoined_after_s = disconnect["at"] + disconnect["offline_s"] - stopped_at
        assert rejoined_after_s <= limit_s, f"client {disconnect['client']} rejoined {rejoined_after_s:.1f} s after"
    assert stuck["servers_at_end"] == {"A": 20}, "clients without detection still believe they are on A"
    assert stuck["disconnects"] == []


def test_rate_limiter_through_haproxy_refuses_a_second_connect_within_a_second(fleets: MakeFleet) -> None:
    fleet = fleets(Budget())
    a = fleet.start_server("A")
    lb = fleet.start_haproxy([a])

    def url(token: str) -> str:
        return f"{lb.ws_url}/socket/websocket?vsn=2.0.0&token={token}"

    def connect_once(token: str, source_ip: str = "127.0.0.1") -> None:
        with connect(url(token), proxy=None, open_timeout=30, source_address=(source_ip, 0)):
            pass

    for _attempt in range(5):  # a busy machine may space two connects more than 1 s apart: then try again
        token = f"rate-{secrets.token_hex(4)}"
        started_s = time.monotonic()
        connect_once(token)
        try:
            connect_once(token)
        except InvalidStatus as exc:
            refused = exc.response
            break
        assert time.monotonic() - started_s >= 1.0, "a second connect within 1 s was let in"
    else:
        pytest.fail("could not make two connects within 1 s of each other in 5 tries")

    assert refused.status_code == 503
    assert refused.headers.get("Retry-After") == "1"
    connect_once(f"other-{secrets.token_hex(4)}")  # another token from the same IP gets in
    connect_once(token, source_ip="127.0.0.2")  # the same token from another client IP too: X-Forwarded-For
    assert a.metric("drainctl_testbed_connects_rejected_total", {"reason": "rate_limited"}) >= 1


def test_official_phoenix_js_client_heartbeats_and_rejoins_the_other_server_on_drain(
    fleets: MakeFleet, phoenix_js: Path
) -> None:
    fleet = fleets(Budget())
    servers = {name: fleet.start_server(name) for name in ("A", "B")}
    lb = fleet.start_haproxy(list(servers.values()))
    peer = fleet.start_command("phoenix-js", ["node", str(phoenix_js), lb.ws_url, "js-client", "300", "room:js", "300"])

    first = peer.wait_event("joined", timeout_s=60)
    assert first["server"] in servers
    since_join = len(peer.events())
    wait_for(
        lambda: len([e for e in peer.events()[since_join:] if e["event"] == "heartbeat_reply"]) >= 2,
        timeout_s=30,
        what="two heartbeat replies",
    )

    servers[first["server"]].drain(rate_per_s=50)
    close = peer.wait_event("close", timeout_s=60)
    assert close["code"] == CLOSE_SERVICE_RESTART
    after_close = next(i for i, event in enumerate(peer.events()) if event is close)
    rejoined = peer.wait_event("joined", timeout_s=60, after=after_close)
    assert rejoined["server"] in servers and rejoined["server"] != first["server"]
    assert servers[first["server"]].open_sockets() == 0


def test_prometheus_started_by_the_harness_returns_each_servers_open_sockets(fleets: MakeFleet) -> None:
    fleet = fleets(Budget())
    a, b = fleet.start_server("A"), fleet.start_server("B")
    prom = fleet.start_prometheus([a, b])
    on_a = fleet.start_swarm(a.ws_url, count=7, duration_s=600, token_prefix="a")
    on_b = fleet.start_swarm(b.ws_url, count=3, duration_s=600, token_prefix="b")
    on_a.wait_joined(60)
    on_b.wait_joined(60)

    def gauges() -> dict[str, float] | None:
        seen = {labels["server"]: value for labels, value in prom.query("drainctl_testbed_open_sockets")}
        return seen if seen == {"A": 7.0, "B": 3.0} else None

    assert wait_for(gauges, timeout_s=60, what="Prometheus to report 7 sockets on A and 3 on B")
    assert (a.open_sockets(), b.open_sockets()) == (7, 3)
