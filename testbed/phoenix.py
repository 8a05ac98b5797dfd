"""Phoenix Channels v2 JSON serializer: the message shape shared by the reference server and the swarm.

Each text frame is a JSON array `[join_ref, ref, topic, event, payload]` (phoenix.js serializer vsn 2.0.0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SOCKET_PATH = "/socket/websocket"
VSN = "2.0.0"
PHOENIX_TOPIC = "phoenix"

HEARTBEAT = "heartbeat"
JOIN = "phx_join"
LEAVE = "phx_leave"
REPLY = "phx_reply"
CLOSE = "phx_close"
ERROR = "phx_error"

CLOSE_SERVICE_RESTART = 1012
"""WebSocket close code a draining server sends (RFC 6455 registry: Service Restart)."""
DRAINING_BODY = "draining\n"
"""Body of the reference server's 503 to a socket handshake while it drains. The swarm tells it by this from
a load balancer's own 503 (HAProxy's "No server is available" when every server is down), which also comes
without `Retry-After` but means something else: no server at all, not a draining one still in rotation."""


class ProtocolError(ValueError):
    """A frame that is not a valid Phoenix v2 message."""


@dataclass(frozen=True)
class Message:
    join_ref: str | None
    ref: str | None
    topic: str
    event: str
    payload: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps([self.join_ref, self.ref, self.topic, self.event, self.payload])

    def reply(self, status: str = "ok", response: dict[str, Any] | None = None) -> Message:
        """The `phx_reply` answering this message on the same join_ref and ref."""
        payload = {"status": status, "response": response or {}}
        return Message(self.join_ref, self.ref, self.topic, REPLY, payload)


def decode(frame: str | bytes) -> Message:
    try:
        data = json.loads(frame)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(data, list) or len(data) != 5:
        raise ProtocolError("expected a JSON array [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = data
    if not isinstance(topic, str) or not isinstance(event, str) or not isinstance(payload, dict):
        raise ProtocolError("topic and event must be strings and payload an object")
    for name, value in (("join_ref", join_ref), ("ref", ref)):
        if value is not None and not isinstance(value, str):
            raise ProtocolError(f"{name} must be a string or null")
    return Message(join_ref, ref, topic, event, payload)


def heartbeat(ref: str) -> Message:
    return Message(None, ref, PHOENIX_TOPIC, HEARTBEAT, {})


def join(topic: str, ref: str, payload: dict[str, Any] | None = None) -> Message:
    return Message(ref, ref, topic, JOIN, payload or {})
