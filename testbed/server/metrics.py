"""The reference server's Prometheus metrics: names and labels are a contract the harness and controller query.

Every server process has its own `CollectorRegistry` (no global state, several servers per test process are
possible). Metrics carry no `server` label: the Prometheus scrape config adds it per target.
"""

from __future__ import annotations

from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

DisconnectReason = Literal["drain", "client_close", "idle_timeout", "error", "shutdown"]
RejectReason = Literal["rate_limited", "draining", "unauthorized"]


class ServerMetrics:
    """The server's counters and gauges on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.open_sockets = Gauge(
            "drainctl_testbed_open_sockets", "Open WebSocket connections, joined or not.", registry=self.registry
        )
        self.connects = Counter(
            "drainctl_testbed_connects", "Accepted WebSocket handshakes.", registry=self.registry
        )
        self.disconnects = Counter(
            "drainctl_testbed_disconnects", "Closed WebSocket connections by reason.", ["reason"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "drainctl_testbed_connects_rejected", "Refused WebSocket handshakes by reason.", ["reason"],
            registry=self.registry,
        )
        self.draining = Gauge("drainctl_testbed_draining", "1 while the server drains.", registry=self.registry)
        self.drain_rate_per_s = Gauge(
            "drainctl_testbed_drain_rate_per_second", "Requested drain pace in disconnects per second.",
            registry=self.registry,
        )
        for reason in get_args(DisconnectReason):
            self.disconnects.labels(reason)
        for reason in get_args(RejectReason):
            self.rejected.labels(reason)

    def disconnected(self, reason: DisconnectReason) -> None:
        self.disconnects.labels(reason).inc()

    def rejected_connect(self, reason: RejectReason) -> None:
        self.rejected.labels(reason).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric, for `GET /metrics`."""
        return generate_latest(self.registry)
