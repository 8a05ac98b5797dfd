"""The client swarm's options, parsed once from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SwarmOptions:
    url: str
    """Base URL of the load balancer or server, e.g. ws://127.0.0.1:8000; the socket path is added."""
    count: int
    """Number of clients, one token each (`<token_prefix>-<index>`)."""
    heartbeat_interval_s: float
    """Seconds between Phoenix heartbeats on each socket."""
    heartbeat_timeout_s: float
    """Declare the socket dead when no heartbeat reply came for this long, measured from the last reply (or the
    join); 0 disables detection (the client stays on a silent socket: the incident)."""
    duration_s: float
    """Run this long, then write the report and exit (SIGTERM/SIGINT end the run early, report written)."""
    report: Path
    """Where the JSON report is written (atomically) at the end of the run."""
    connect_timeout_s: float = 15.0
    """A connect (TCP + WebSocket handshake + join) that takes longer is abandoned and retried."""
    connect_rate_per_s: float = 500.0
    """Initial connects are spread at this rate so a large swarm does not overflow the listen backlog."""
    token_prefix: str = "client"
    topic: str = "room:lobby"
