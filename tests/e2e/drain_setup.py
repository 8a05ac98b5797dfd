"""The drain path's end-to-end bed: reference servers behind HAProxy, an agent per retiring server, Prometheus,
the controller (`drainctl run`), the testbed platform, and a swarm whose clients sit on the retiring servers.

Every scenario of issue 5 starts from `start_bed`: the healthy servers are out of rotation while the swarm
joins, so each test knows exactly which clients are on which server, then they come back. Clients have no
heartbeat timeout: only a drain or a reset can move them, as in the incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.harness import (
    AgentProcess,
    ControllerProcess,
    Fleet,
    LoadBalancer,
    Platform,
    Prometheus,
    ServerProcess,
    SwarmProcess,
)
from testbed.harness.waiting import wait_for
from tests.support.budgets import E2E

E2E_BUDGET = E2E

OPEN_SOCKETS = "drainctl_testbed_open_sockets"
SETTLE_S = 120.0
"""Generous bound on anything the tests wait for: the machine is shared and may be busy."""


@dataclass
class Bed:
    fleet: Fleet
    servers: dict[str, ServerProcess]
    agents: dict[str, AgentProcess]
    lb: LoadBalancer
    prometheus: Prometheus
    controller: ControllerProcess | None
    platform: Platform
    swarm: SwarmProcess
    clients_on: dict[str, int]
    """WebSockets on each retiring server once every client had joined (the app's count: the kernel's also
    holds HAProxy's health checks for a moment now and then)."""

    @property
    def clients(self) -> int:
        return self.swarm.count

    def wait_clients_on(self, server: str, count: int) -> None:
        """Wait until `server` holds `count` sockets (its app's own count)."""
        wait_for(lambda: self.servers[server].open_sockets() == count, timeout_s=SETTLE_S,
                 what=f"{server} to hold {count} sockets")


def start_bed(
    fleet: Fleet,
    retiring: Mapping[str, str | None],
    *,
    healthy: Sequence[str] = ("B",),
    clients_per_server: int = 50,
    fallback: Mapping[str, Any] | None = None,
    controller: bool = True,
    controller_options: Mapping[str, Any] | None = None,
    fail_first: Mapping[str, int] | None = None,
) -> Bed:
    """Start the bed: `retiring` maps server name -> fault (None or "ignore-drain"); `fail_first`: the retiring
    agents answer 503 to their first resets and releases (`Fleet.start_agent`)."""
    servers = {name: fleet.start_server(name, fault=fault) for name, fault in retiring.items()}
    servers.update({name: fleet.start_server(name) for name in healthy})
    lb = fleet.start_haproxy(list(servers.values()))
    for name in healthy:
        lb.set_server_state(name, "maint")
    prometheus = fleet.start_prometheus(list(servers.values()))
    agents = {name: fleet.start_agent(servers[name], fallback=fallback, fail_first=fail_first) for name in retiring}
    ctl = None
    if controller:
        config = fleet.controller_config(list(agents.values()), prometheus=prometheus, **(controller_options or {}))
        ctl = fleet.start_controller(config)
    swarm = fleet.start_swarm(lb.ws_url, count=clients_per_server * len(retiring), duration_s=3600,
                              heartbeat_timeout_s=0)
    swarm.wait_joined(SETTLE_S)
    clients_on = {name: servers[name].open_sockets() for name in retiring}
    for name in healthy:
        lb.set_server_state(name, "ready")
        lb.wait_state(name, "UP", timeout_s=SETTLE_S)
    _wait_scraped(prometheus, clients_on)
    return Bed(fleet, servers, agents, lb, prometheus, ctl, fleet.platform(controller=ctl, lb=lb), swarm, clients_on)


def _wait_scraped(prometheus: Prometheus, counts: Mapping[str, int]) -> None:
    """Wait until Prometheus has scraped every retiring server with its clients on (it lags up to a scrape
    interval, and the controller trusts a fresh sample when the agent cannot answer)."""

    def scraped() -> bool:
        seen = {labels.get("server"): value for labels, value in prometheus.query(OPEN_SOCKETS)}
        return all(seen.get(name) == count for name, count in counts.items())

    wait_for(scraped, timeout_s=SETTLE_S, what=f"Prometheus to see {dict(counts)}")


def app_drain_requests(server: ServerProcess) -> int:
    """Drain requests that reached the app, from its own log (it logs each one, kept after it is deleted)."""
    text = server.process.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if "drain requested at" in line)


def journal(controller: ControllerProcess, drain_id: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = controller.drain_detail(drain_id)["journal"]
    return sorted(lines, key=lambda line: line["seq"])


def step_at(lines: Sequence[dict[str, Any]], step: str) -> float:
    """When the journal first recorded `step`; fails the test if it never did."""
    for line in lines:
        if line["step"] == step:
            return float(line["at"])
    raise AssertionError(f"journal has no {step!r} step: {[line['step'] for line in lines]}")


def disconnects_from(report: Mapping[str, Any], server: str) -> list[dict[str, Any]]:
    return [d for d in report["disconnects"] if d["server"] == server]
