"""How the reference server answers Phoenix Channels messages on one socket.

Pure: a message and the socket's joined topics in, the reply out. Mirrors what a Phoenix endpoint does for
the parts the testbed needs: heartbeats, joins (the reply names the server, so tests know where a client
sits), leaves, and pushes on joined topics; a push on a topic that was never joined gets Phoenix's
`unmatched topic` error.
"""

from __future__ import annotations

from testbed import phoenix
from testbed.phoenix import Message


def answer(message: Message, joined: set[str], *, server_name: str) -> Message | None:
    """The reply to `message`, updating `joined`; None when the message asks for no reply (no ref)."""
    if message.topic == phoenix.PHOENIX_TOPIC and message.event == phoenix.HEARTBEAT:
        return _reply(message)
    if message.event == phoenix.JOIN:
        joined.add(message.topic)
        return _reply(message, {"server": server_name})
    if message.topic not in joined:
        return _reply(message, {"reason": "unmatched topic"}, status="error")
    if message.event == phoenix.LEAVE:
        joined.discard(message.topic)
        return _reply(message)
    return _reply(message, message.payload)


def _reply(message: Message, response: dict[str, object] | None = None, *, status: str = "ok") -> Message | None:
    if message.ref is None:
        return None
    return message.reply(status, response)
