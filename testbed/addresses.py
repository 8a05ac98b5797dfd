"""Parsing of the HOST:PORT and URL arguments the testbed commands take."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from controller.core.errors import ConfigError


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_hostport(text: str, *, option: str) -> HostPort:
    """`127.0.0.1:8080`, `[::1]:8080` or `:8080` (all interfaces); port 0 lets the kernel choose."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{option}: expected HOST:PORT, got {text!r}")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    return HostPort(host, int(port))


def parse_ws_url(text: str, *, option: str) -> str:
    """A ws:// or wss:// URL with a host; the socket path and query are added by the client."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{option}: malformed URL {text!r}: {exc}") from exc
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ConfigError(f"{option}: expected a ws:// or wss:// URL with a host, got {text!r}")
    del port
    return text
