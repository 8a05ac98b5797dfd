"""The life of one accepted WebSocket: register it, answer its Phoenix messages, count why it ended."""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from testbed import phoenix
from testbed.server.channels import answer
from testbed.server.metrics import DisconnectReason, ServerMetrics
from testbed.server.sockets import OpenSockets

log = logging.getLogger(__name__)


class SocketHandler:
    """The `websockets` connection handler: one call per accepted handshake, returns when the socket closed."""

    def __init__(self, *, server_name: str, sockets: OpenSockets, metrics: ServerMetrics) -> None:
        self.server_name = server_name
        self.sockets = sockets
        self.metrics = metrics

    async def __call__(self, connection: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        peer = self.sockets.add(connection, loop.time())
        self.metrics.connects.inc()
        self.metrics.open_sockets.inc()
        try:
            async for frame in connection:
                peer.last_seen_s = loop.time()
                reply = self._reply_to(frame, peer.joined)
                if reply is not None:
                    await connection.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.sockets.remove(connection, loop.time())
            self.metrics.open_sockets.dec()
            self.metrics.disconnected(peer.close_reason or _client_side_reason(connection))

    def _reply_to(self, frame: str | bytes, joined: set[str]) -> str | None:
        try:
            message = phoenix.decode(frame)
        except phoenix.ProtocolError as exc:
            log.debug("ignoring malformed frame: %s", exc)
            return None
        reply = answer(message, joined, server_name=self.server_name)
        return None if reply is None else reply.encode()


def _client_side_reason(connection: ServerConnection) -> DisconnectReason:
    """A socket the server did not close: a close frame from the client, or anything else (reset, EOF)."""
    protocol = connection.protocol
    if protocol.close_rcvd is not None and protocol.close_rcvd_then_sent:
        return "client_close"
    return "error"
