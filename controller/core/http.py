"""Retry-After (RFC 9110 §10.2.3) as seconds: what a 429 or 503 asks a client to wait before trying again.

Shared by the cloud clients (Compute API, IMDS, the GCE metadata server); each turns it into the `delay_s` of
its `TemporaryError`, and its caller waits at least that long.
"""

from __future__ import annotations

import email.utils
import math
import time


def retry_after_s(value: str | None, *, now: float | None = None) -> float | None:
    """Delta-seconds or an HTTP date, as seconds from now; None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None
