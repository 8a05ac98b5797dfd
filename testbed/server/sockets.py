"""The open WebSockets of one server: when each last spoke, which topics it joined, why we closed it.

One small record per socket and no task or timer of our own per socket (the scale target is 10,000 sockets
per process): the idle sweep and the drain pacer walk this registry instead. A close we start is a short-lived
task (send the close frame, wait for the peer's), and its reason is recorded before the frame leaves so the
connection handler can count the disconnect under the right reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from websockets.asyncio.server import ServerConnection

from testbed.server.metrics import DisconnectReason


class Peer:
    """What the server remembers about one open socket."""

    __slots__ = ("close_reason", "joined", "last_seen_s")

    def __init__(self, now_s: float) -> None:
        self.last_seen_s = now_s
        """Loop time of the last frame received (or of the handshake)."""
        self.joined: set[str] = set()
        """Topics joined with phx_join and not left."""
        self.close_reason: DisconnectReason | None = None
        """Set when the server starts closing this socket; None while open or when the client closes."""


class OpenSockets:
    """Registry of open sockets, in the order they connected."""

    def __init__(self) -> None:
        self._peers: dict[ServerConnection, Peer] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.changed_at_s = float("-inf")
        """Loop time a socket last opened or closed (the collector waits for a quiet spell)."""

    def add(self, connection: ServerConnection, now_s: float) -> Peer:
        peer = self._peers[connection] = Peer(now_s)
        self.changed_at_s = now_s
        return peer

    def remove(self, connection: ServerConnection, now_s: float) -> None:
        self._peers.pop(connection, None)
        self.changed_at_s = now_s

    def __len__(self) -> int:
        return len(self._peers)

    def open(self) -> Iterator[tuple[ServerConnection, Peer]]:
        """Sockets the server has not started closing, oldest first."""
        return ((c, p) for c, p in list(self._peers.items()) if p.close_reason is None)

    def silent_since(self, cutoff_s: float) -> list[ServerConnection]:
        """Open sockets that have sent nothing since loop time `cutoff_s`."""
        return [c for c, p in self._peers.items() if p.close_reason is None and p.last_seen_s < cutoff_s]

    def close(self, connection: ServerConnection, *, code: int, text: str, reason: DisconnectReason) -> None:
        """Start closing `connection` with a close frame; the handler counts it under `reason`."""
        peer = self._peers.get(connection)
        if peer is None or peer.close_reason is not None:
            return
        peer.close_reason = reason
        task = asyncio.get_running_loop().create_task(connection.close(code, text))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_some(self, count: int, *, code: int, text: str, reason: DisconnectReason) -> int:
        """Start closing up to `count` sockets, oldest first; how many were started."""
        if count <= 0:
            return 0
        started = 0
        for connection, _peer in self.open():
            if started >= count:
                break
            self.close(connection, code=code, text=text, reason=reason)
            started += 1
        return started

    def mark_all(self, reason: DisconnectReason) -> None:
        """Record `reason` on every socket not already being closed (before a bulk close elsewhere)."""
        for peer in self._peers.values():
            if peer.close_reason is None:
                peer.close_reason = reason

    def abort_all(self) -> None:
        """Drop every registered TCP connection at once (shutdown, after the grace period)."""
        for connection in list(self._peers):
            connection.transport.abort()
