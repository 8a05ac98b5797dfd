"""The reference server's options, parsed once from the command line."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from testbed.addresses import HostPort


class Fault(enum.StrEnum):
    IGNORE_DRAIN = "ignore-drain"
    """Acknowledge drain requests and do nothing: the incident."""


@dataclass(frozen=True)
class ServerOptions:
    listen: HostPort
    """WebSocket, /healthz, /readyz and /metrics; port 0 lets the kernel choose."""
    admin: HostPort
    """Admin routes (drain, status), bearer token required; port 0 lets the kernel choose."""
    admin_token: str
    """Bearer token for the admin routes, read from --admin-token-file. Never logged."""
    name: str
    """Server name, reported in join replies and metrics labels so tests can tell servers apart."""
    fault: Fault | None
    idle_timeout_s: float
    """Close a socket that sent nothing for this long (budget: server_idle_timeout_s)."""
