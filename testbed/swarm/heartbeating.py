"""A joined session: heartbeat every interval, and declare the socket dead when the replies stop.

Dead-connection detection measures from the *last heartbeat reply* (or the join reply, before the first
heartbeat is answered): when `timeout_s` passes without one, the socket is dead. A peer that goes silent at
time T is therefore detected by T + timeout_s at the latest, whatever the heartbeat phase. Any reply on the
`phoenix` topic counts, including a late one to an older heartbeat: it proves the peer is alive.

A dead socket is aborted (no closing handshake: a wedged peer would never answer it). With `timeout_s == 0`
there is no detection at all and the client sits on a silent socket until the kernel or the peer ends it:
that is the incident the testbed reproduces.

One coroutine per client and one timer per wait: the coroutine sleeps in `recv()` until the next heartbeat or
the dead-line, whichever comes first.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from testbed import phoenix
from testbed.swarm.connecting import JOIN_REF
from testbed.swarm.records import Cause, Ending


async def hold(connection: ClientConnection, *, interval_s: float, timeout_s: float) -> Ending:
    """Keep a joined socket alive until it ends; return how it ended."""
    loop = asyncio.get_running_loop()
    last_reply_s = loop.time()
    next_beat_s = last_reply_s + interval_s
    ref = int(JOIN_REF)
    while True:
        dead_at_s = last_reply_s + timeout_s if timeout_s > 0 else None
        try:
            async with asyncio.timeout_at(next_beat_s if dead_at_s is None else min(next_beat_s, dead_at_s)):
                frame = await connection.recv()
        except TimeoutError:
            now_s = loop.time()
            if dead_at_s is not None and now_s >= dead_at_s:
                return _declare_dead(connection)
            if now_s >= next_beat_s:
                ref += 1
                if not await _beat(connection, str(ref), dead_at_s):
                    return _declare_dead(connection)
                next_beat_s = now_s + interval_s
            continue
        except ConnectionClosed as exc:
            return _ending(exc)
        try:
            message = phoenix.decode(frame)
        except phoenix.ProtocolError:
            connection.transport.abort()
            return Ending(Cause.ERROR)
        if message.topic == phoenix.PHOENIX_TOPIC and message.event == phoenix.REPLY:
            last_reply_s = loop.time()


async def _beat(connection: ClientConnection, ref: str, dead_at_s: float | None) -> bool:
    """Send one heartbeat; False when the send is still blocked at the dead-line (a peer that reads nothing)."""
    try:
        async with asyncio.timeout_at(dead_at_s):
            await connection.send(phoenix.heartbeat(ref).encode())
    except TimeoutError:
        return False
    except ConnectionClosed:
        pass  # the next recv() reports how it closed
    return True


def _declare_dead(connection: ClientConnection) -> Ending:
    connection.transport.abort()
    return Ending(Cause.HEARTBEAT_TIMEOUT)


def _ending(exc: ConnectionClosed) -> Ending:
    if exc.rcvd is not None:
        return Ending(Cause.CLOSE, int(exc.rcvd.code))
    if exc.sent is not None:  # we failed the connection ourselves: the peer broke the WebSocket protocol
        return Ending(Cause.ERROR)
    return Ending(Cause.RESET)
