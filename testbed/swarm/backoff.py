"""Reconnect delays: exponential backoff with equal jitter, and `Retry-After` parsing.

Why hand-written: the swarm needs per-attempt control that the retry libraries do not give cheaply. A 503 with
`Retry-After` must *replace* the next delay, a 401 must stop the client, every attempt must be counted, and
10,000 clients must each carry no more than two floats of state. `websockets.client.backoff` jitters only its
first delay and knows no `Retry-After`; tenacity/backoff wrap a callable in decorators and own the loop.

Policy (FACTS.md, Firezone clients): 500 ms initial, x1.5 per consecutive failure, capped at 60 s. Equal jitter:
a delay is drawn uniformly from [base/2, base], so a wave of clients spreads out yet never retries at once.
"""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from dataclasses import dataclass, field

INITIAL_DELAY_S = 0.5
FACTOR = 1.5
CAP_S = 60.0


@dataclass
class Backoff:
    """Delays for consecutive failures; `reset()` after a success starts over at `initial_s`."""

    initial_s: float = INITIAL_DELAY_S
    factor: float = FACTOR
    cap_s: float = CAP_S
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _base_s: float = field(default=0.0, init=False, repr=False)

    def next_delay_s(self) -> float:
        """The delay before the next attempt; each call counts one more consecutive failure."""
        self._base_s = self.initial_s if self._base_s == 0.0 else min(self.cap_s, self._base_s * self.factor)
        return self._base_s / 2 + self.rng.uniform(0.0, self._base_s / 2)

    def reset(self) -> None:
        self._base_s = 0.0


def retry_after_s(value: str | None, *, now_s: float | None = None, cap_s: float = CAP_S) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date, RFC 9110 §10.2.3).

    None when the header is missing or unreadable (the caller falls back to its backoff). The result is
    clamped to [0, cap_s] so a server cannot park a client for longer than its own backoff cap would.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), cap_s)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # asctime form and "-0000" carry no zone; HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    now = time.time() if now_s is None else now_s
    return min(max(0.0, when.timestamp() - now), cap_s)
