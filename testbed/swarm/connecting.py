"""One connect attempt of one client: TCP, WebSocket handshake and channel join, or a classified failure.

This is the swarm's boundary with `websockets`: its exceptions are turned into ours here, so the reconnect loop
only decides between "stop" (`Unauthorized`), "wait as told" (`Rejected` with Retry-After) and "back off".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from controller.core.errors import PermanentError, TemporaryError
from testbed import phoenix
from testbed.swarm.backoff import retry_after_s

JOIN_REF = "1"
MAX_QUEUE_FRAMES = 4
"""Incoming frames buffered per socket: a client only ever waits for one reply at a time."""
CLOSE_TIMEOUT_S = 2.0
"""How long our own close waits for the peer's closing handshake before aborting (a wedged peer never answers)."""


class Unauthorized(PermanentError):
    """HTTP 401 on the handshake: the token is refused, retrying will not help."""


class Rejected(TemporaryError):
    """HTTP 503 on the handshake; `retry_after_s` is set when the server said when to come back, `draining`
    when the body is the reference server's draining refusal (else: a load balancer with no server)."""

    def __init__(
        self, message: str, *, retry_after_s: float | None, draining: bool = False, fallback_delay_s: float = 0.0
    ) -> None:
        super().__init__(message, delay_s=fallback_delay_s if retry_after_s is None else retry_after_s)
        self.retry_after_s = retry_after_s
        self.draining = draining


class ConnectFailed(TemporaryError):
    """Any other failed attempt: refused, reset, timed out, another HTTP status, a refused join."""


@dataclass(frozen=True)
class Joined:
    connection: ClientConnection
    server: str | None
    """The server's name from the join reply, if it sent one."""


def socket_url(base_url: str, token: str) -> str:
    """`ws://host:port[/prefix]` -> `ws://host:port[/prefix]/socket/websocket?vsn=2.0.0&token=...`."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + phoenix.SOCKET_PATH
    query = urlencode({"vsn": phoenix.VSN, "token": token})
    return urlunsplit((scheme, parts.netloc, path, query, ""))


async def connect_and_join(url: str, topic: str, *, timeout_s: float) -> Joined:
    """Open a socket at `url` (from `socket_url`) and join `topic`, all within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            connection = await connect(
                url,
                open_timeout=timeout_s,
                ping_interval=None,
                compression=None,
                max_queue=MAX_QUEUE_FRAMES,
                close_timeout=CLOSE_TIMEOUT_S,
            )
            try:
                return Joined(connection, await _join(connection, topic))
            except BaseException:
                connection.transport.abort()
                raise
    except InvalidStatus as exc:
        raise _rejection(exc) from exc
    except TimeoutError as exc:
        raise ConnectFailed(f"connect and join took longer than {timeout_s:g} s") from exc
    except (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, phoenix.ProtocolError) as exc:
        raise ConnectFailed(f"connect failed: {type(exc).__name__}: {exc}") from exc


async def _join(connection: ClientConnection, topic: str) -> str | None:
    await connection.send(phoenix.join(topic, JOIN_REF).encode())
    while True:
        message = phoenix.decode(await connection.recv())
        if message.event == phoenix.REPLY and message.ref == JOIN_REF and message.topic == topic:
            break
    if message.payload.get("status") != "ok":
        raise phoenix.ProtocolError(f"join of {topic!r} refused: {message.payload!r}")
    response = message.payload.get("response")
    server = response.get("server") if isinstance(response, dict) else None
    return server if isinstance(server, str) else None


def _rejection(exc: InvalidStatus) -> Exception:
    status = exc.response.status_code
    if status == 401:
        return Unauthorized("HTTP 401: token refused")
    if status == 503:
        header = exc.response.headers.get("Retry-After")
        draining = header is None and bytes(exc.response.body) == phoenix.DRAINING_BODY.encode()
        return Rejected(f"HTTP 503 (Retry-After: {header})", retry_after_s=retry_after_s(header), draining=draining)
    return ConnectFailed(f"HTTP {status} on the WebSocket handshake")
