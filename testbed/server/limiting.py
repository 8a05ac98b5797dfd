"""The WebSocket connect rate limit, as Firezone's portal has it.

A token bucket per (client IP, first 16 hex chars of sha256(token)): capacity 1, refilled at 1 per second.
A denied connect is answered 503 with `Retry-After: 1` (503 rather than 429: old clients treated 429 as fatal).
The client IP is the first `X-Forwarded-For` address when the TCP peer is loopback (HAProxy in the testbed
adds it with `option forwardfor`), else the TCP peer itself.

Buckets that have refilled completely are indistinguishable from absent ones, so they are evicted: memory
stays bounded by the number of clients that connected within the last `capacity / refill_per_s` seconds.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

BucketKey = tuple[str, str]


def token_hash(token: str) -> str:
    """The first 16 hex chars of sha256(token): the bucket key never holds the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def client_ip(peer_host: str, forwarded_for: str | None) -> str:
    """The address a connect is charged to: the first X-Forwarded-For entry behind a loopback proxy."""
    if forwarded_for and _is_loopback(peer_host):
        first = forwarded_for.split(",")[0].strip()
        if first:
            return first
    return peer_host


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class ConnectLimiter:
    """Token buckets keyed by (client IP, token hash); `allow` spends one token or refuses."""

    def __init__(self, *, capacity: float = 1.0, refill_per_s: float = 1.0) -> None:
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._full_after_s = capacity / refill_per_s
        self._buckets: dict[BucketKey, _Bucket] = {}
        self._evicted_at_s = float("-inf")

    def allow(self, key: BucketKey, now_s: float) -> bool:
        self._evict_full(now_s)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.capacity, now_s)
        else:
            refilled = bucket.tokens + (now_s - bucket.updated_s) * self.refill_per_s
            bucket.tokens = min(self.capacity, refilled)
            bucket.updated_s = now_s
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict_full(self, now_s: float) -> None:
        """Drop buckets that have refilled completely, at most once per refill period."""
        if now_s - self._evicted_at_s < self._full_after_s:
            return
        self._evicted_at_s = now_s
        full = [key for key, b in self._buckets.items() if now_s - b.updated_s >= self._full_after_s]
        for key in full:
            del self._buckets[key]
