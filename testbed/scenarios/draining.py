"""The graceful-drain scenario: two servers behind HAProxy, a swarm on them, one server drained at a pace.

This is what "a drain works" means on the testbed, shared by `make demo` (which prints it) and the end-to-end
test (which asserts it): every client of the drained server A was closed with 1012 and rejoined B, none was
refused by B's connect rate limit more than once, and A ended with zero open sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from testbed.harness import Fleet, ServerProcess
from testbed.harness.waiting import wait_for
from testbed.phoenix import CLOSE_SERVICE_RESTART

OPEN_SOCKETS = "drainctl_testbed_open_sockets"
JOIN_TIMEOUT_S = 180.0
"""Bound on the swarm's initial joins; generous, the machine is shared."""
SETTLE_TIMEOUT_S = 120.0
"""Bound on the reconnect wave after the drain, beyond the drain's own N / rate seconds."""
SWARM_DURATION_S = 3600.0
"""The swarm is stopped when the scenario ends; this only bounds a swarm nobody stops."""


@dataclass(frozen=True)
class DrainScenario:
    clients: int = 1000
    """Swarm size, spread over A and B by HAProxy (leastconn)."""
    drain_rate_per_s: float = 200.0
    """A's drain pace, disconnects per second."""


@dataclass(frozen=True)
class DrainOutcome:
    """What the scenario saw: server counts around the drain, Prometheus's view, the swarm's report."""

    scenario: DrainScenario
    before: dict[str, int]
    """Open sockets per server (admin status) just before the drain request."""
    after: dict[str, int]
    """Open sockets per server once A reached zero and B held every client."""
    drained: int
    """A's disconnects counted under reason "drain"."""
    prometheus_after: dict[str, float]
    """The open-socket gauge per server as Prometheus returned it at the end."""
    report: dict[str, Any] = field(repr=False)
    """The swarm's JSON report (see testbed/swarm/reporting.py)."""

    def drain_closes(self) -> list[dict[str, Any]]:
        """The swarm's disconnects that were A closing a socket with 1012."""
        return [d for d in self.report["disconnects"] if _is_drain_close(d)]

    def problems(self) -> list[str]:
        """Each way the drain failed its promise, as a sentence; empty when it kept it."""
        report, clients = self.report, self.scenario.clients
        closes = self.drain_closes()
        problems = []
        if self.after.get("A") != 0:
            problems.append(f"A still holds {self.after.get('A')} sockets")
        if report["servers_at_end"] != {"B": clients} or report["connected_at_end"] != clients:
            problems.append(f"clients at the end are {report['servers_at_end']}, expected all {clients} on B")
        if len({d["client"] for d in closes}) != len(closes) or len(closes) != self.before["A"]:
            problems.append(f"{len(closes)} 1012 closes from A, expected one for each of A's {self.before['A']}")
        others = [d for d in report["disconnects"] if not _is_drain_close(d)]
        if others:
            problems.append(f"{len(others)} disconnects other than A's 1012 closes, e.g. {others[0]}")
        if report["rate_limited_max_per_client"] > 1:
            problems.append(f"a client was rate-limited {report['rate_limited_max_per_client']} times")
        return problems


def _is_drain_close(disconnect: dict[str, Any]) -> bool:
    return bool(
        disconnect["server"] == "A" and disconnect["cause"] == "close" and disconnect["code"] == CLOSE_SERVICE_RESTART
    )


def run_drain(fleet: Fleet, scenario: DrainScenario, progress: Callable[[str], None] = lambda _: None) -> DrainOutcome:
    """Start A, B, HAProxy, Prometheus and the swarm in `fleet`, drain A, and collect what happened."""
    a, b = fleet.start_server("A"), fleet.start_server("B")
    lb = fleet.start_haproxy([a, b])
    prom = fleet.start_prometheus([a, b])
    progress(f"servers A {a.listen}, B {b.listen}; haproxy {lb.frontend}; prometheus {prom.url}")
    swarm = fleet.start_swarm(lb.ws_url, count=scenario.clients, duration_s=SWARM_DURATION_S)
    swarm.wait_joined(JOIN_TIMEOUT_S)
    before = {"A": a.open_sockets(), "B": b.open_sockets()}
    progress(f"{scenario.clients} clients joined: A {before['A']}, B {before['B']}; draining A at "
             f"{scenario.drain_rate_per_s:g}/s")
    a.drain(scenario.drain_rate_per_s)
    drain_bound_s = before["A"] / scenario.drain_rate_per_s + SETTLE_TIMEOUT_S
    wait_for(lambda: a.open_sockets() == 0, timeout_s=drain_bound_s, what="A to reach zero open sockets")
    _wait_count(b, scenario.clients, "B to hold every client")
    after = {"A": a.open_sockets(), "B": b.open_sockets()}
    expected = {"A": 0.0, "B": float(scenario.clients)}

    def prometheus_agrees() -> dict[str, float] | None:
        seen = {labels.get("server", "?"): value for labels, value in prom.query(OPEN_SOCKETS)}
        return seen if seen == expected else None

    prometheus_after = wait_for(prometheus_agrees, timeout_s=SETTLE_TIMEOUT_S, what="Prometheus to see A 0, B all")
    drained = int(a.metric("drainctl_testbed_disconnects_total", {"reason": "drain"}))
    progress("A is empty and B holds every client; stopping the swarm")
    report = swarm.stop()
    return DrainOutcome(scenario, before, after, drained, prometheus_after, report)


def _wait_count(server: ServerProcess, count: int, what: str) -> None:
    wait_for(lambda: server.open_sockets() == count, timeout_s=SETTLE_TIMEOUT_S, what=what)
