"""What the swarm remembers while it runs: per-client state, disconnects and connect-attempt counts.

Kept small and slotted on purpose: a swarm holds 10,000 of these in one process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection


class Cause(enum.StrEnum):
    """Why a joined socket ended."""

    CLOSE = "close"
    """The server sent a close frame (its code is recorded, e.g. 1012 on drain)."""
    RESET = "reset"
    """The connection was reset or hit EOF without a close frame."""
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    """No heartbeat reply for heartbeat_timeout_s: the client declared the socket dead and aborted it."""
    ERROR = "error"
    """Anything else: a frame that is not Phoenix v2, an unexpected failure in the client."""


@dataclass(frozen=True, slots=True)
class Ending:
    """How one joined session ended."""

    cause: Cause
    code: int | None = None

    @property
    def key(self) -> str:
        """The report's `by_cause` key: close causes carry their code (`close:1012`)."""
        return f"{self.cause}:{self.code}" if self.cause is Cause.CLOSE else str(self.cause)


@dataclass(slots=True)
class Disconnect:
    """One disconnect of a joined client; `offline_s` is filled in when the client joins again."""

    client: int
    at_unix_s: float
    at_monotonic_s: float
    ending: Ending
    server: str | None
    offline_s: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "client": self.client,
            "at": round(self.at_unix_s, 3),
            "cause": str(self.ending.cause),
            "code": self.ending.code,
            "server": self.server,
            "offline_s": None if self.offline_s is None else round(self.offline_s, 4),
        }


@dataclass(slots=True)
class ClientState:
    """One client of the swarm, as the runner and the report see it."""

    index: int
    joins: int = 0
    rate_limited: int = 0
    server: str | None = None
    """The server of the current session (from the join reply); None while not joined."""
    unauthorized: bool = False
    connection: ClientConnection | None = None
    """The open socket, if any, so the runner can abort it at shutdown."""
    offline_since: Disconnect | None = None
    """The last disconnect, until the next successful join measures its offline time."""


@dataclass(slots=True)
class AttemptCounts:
    """Connect attempts over the whole run (a connect is TCP + WebSocket handshake + join)."""

    connect_attempts: int = 0
    rejected_503: int = 0
    rate_limited: int = 0
    """Of the 503s, those carrying Retry-After (the server's connect rate limit)."""
    refused_draining: int = 0
    """Of the 503s, the reference server's refusals while it drains (no Retry-After, body `draining`)."""
    unauthorized: int = 0
    connect_failures: int = 0
    """Everything else: refused, reset, timed out, other HTTP statuses, a refused join."""


@dataclass(slots=True)
class SwarmState:
    """Everything the report is built from."""

    clients: list[ClientState]
    counts: AttemptCounts = field(default_factory=AttemptCounts)
    disconnects: list[Disconnect] = field(default_factory=list)
