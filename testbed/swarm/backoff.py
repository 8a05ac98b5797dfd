"""Reconnect delays: exponential backoff with equal jitter, and `Retry-After` capped at the backoff's cap.

Why hand-written: the swarm needs per-attempt control that the retry libraries do not give cheaply. A 503 with
`Retry-After` must *replace* the next delay, a 401 must stop the client, every attempt must be counted, and
10,000 clients must each carry no more than two floats of state. `websockets.client.backoff` jitters only its
first delay and knows no `Retry-After`; tenacity/backoff wrap a callable in decorators and own the loop.

Policy (FACTS.md, Firezone clients): 500 ms initial, x1.5 per consecutive failure, capped at 60 s. Equal jitter:
a delay is drawn uniformly from [base/2, base], so a wave of clients spreads out yet never retries at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from controller.core.http import retry_after_s as parse_retry_after_s

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
    """Seconds to wait from a `Retry-After` header (drainctl's one parser, controller/core/http.py).

    None when the header is missing or unreadable (the caller falls back to its backoff). The result is
    clamped to [0, cap_s] so a server cannot park a client for longer than its own backoff cap would.
    """
    delay_s = parse_retry_after_s(value, now=now_s)
    return None if delay_s is None else min(delay_s, cap_s)
