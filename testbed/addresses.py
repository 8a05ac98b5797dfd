"""Parsing of the HOST:PORT and URL arguments the testbed commands take (HOST:PORT is core's `HostPort`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from controller.core.errors import ConfigError, PermanentError
from controller.core.settings import HostPort

__all__ = ["HostPort", "parse_hostport", "parse_ws_url", "ready_address"]


def parse_hostport(text: str, *, option: str) -> HostPort:
    """`127.0.0.1:8080`, `[::1]:8080` or `:8080` (all IPv4 interfaces); port 0 lets the kernel choose."""
    try:
        address = HostPort.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc
    return address if address.host else HostPort("0.0.0.0", address.port)


def ready_address(ready: Mapping[str, Any], key: str, *, who: str) -> HostPort:
    """The HOST:PORT a started process's ready line gives under `key`; PermanentError when it gives none."""
    if key not in ready:
        raise PermanentError(f"{who}: ready line lacks {key!r}: {dict(ready)!r}")
    return parse_hostport(str(ready[key]), option=f"{who} ready.{key}")


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
