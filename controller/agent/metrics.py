"""The agent's Prometheus metrics, in a registry of its own (several agents can share one test process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from controller.core.build_info import export_build_info


class AgentMetrics:
    def __init__(self, service_port: int) -> None:
        self.registry = CollectorRegistry()
        export_build_info(self.registry, "drainctl_agent_build_info")
        self.drains = Counter(
            "drainctl_agent_drains_requested",
            "Drain requests passed to the app, by who asked and how the app answered.",
            ["by", "outcome"],
            registry=self.registry,
        )
        self.resets = Counter(
            "drainctl_agent_resets", "Socket resets run on the service port, by who asked.", ["by"],
            registry=self.registry,
        )
        self.sockets_reset = Counter(
            "drainctl_agent_sockets_reset", "Sockets aborted with a TCP RST, by who asked.", ["by"],
            registry=self.registry,
        )
        self.fallback_runs = Counter(
            "drainctl_agent_fallback_runs",
            "Notices the local fallback finished, by outcome (drained, forced, controller, released).",
            ["outcome"],
            registry=self.registry,
        )
        self.notices = Counter(
            "drainctl_agent_notices_seen", "Platform lifecycle notices seen, by kind.", ["kind"],
            registry=self.registry,
        )
        self.releases = Counter(
            "drainctl_agent_notices_released", "Notices released to the platform, by who released.", ["by"],
            registry=self.registry,
        )
        established = Gauge(
            "drainctl_agent_established_connections",
            "Established TCP sockets on the service port at the last kernel count.",
            ["port"],
            registry=self.registry,
        )
        self.established = established.labels(port=str(service_port))

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
