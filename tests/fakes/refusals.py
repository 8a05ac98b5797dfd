"""What the data-plane fakes (Secret Manager, Cloud Storage, Key Vault, Blob) share: the log of every access
and "the grant does not exist yet" as a per-client refusal.

A VM's first read of a secret often comes before the IAM grant (or role assignment) that allows it has
propagated: the cloud answers 403 and a correct boot script retries (contracts C1, `retry`). `Refusals` plays
that race deterministically: `refuse_first(per_client=1)` refuses each client address's first request, so the
box can assert that every VM got a 403 and then its secret. `fail_next(n, status=503)` answers the next n
requests with a transient server error in the service's own shape (retries must ride it out).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class Access:
    """One request to a fake: who (the peer address), what, and the status answered."""

    client: str
    resource: str
    """What was asked for, e.g. `proj/agent-token`, `bucket/drainctl/wheelhouse.tar.gz`."""
    authorization: str
    at: float
    status: int = 0


class Refusals:
    """Refuse the first `per_client` requests of each client address (0: refuse nothing)."""

    def __init__(self) -> None:
        self.per_client = 0
        self.seen: Counter[str] = Counter()
        self.failures: list[list[int]] = []
        """[remaining, status] of transient failures to answer next, whoever asks."""

    def refuse_first(self, per_client: int = 1) -> None:
        """From now on, each client's first `per_client` requests are refused (counts start afresh)."""
        self.per_client = per_client
        self.seen.clear()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests (any client) with `status`, a transient server error."""
        self.failures.append([count, status])

    def failure(self) -> int | None:
        """The status of a transient failure to answer now, if one is due."""
        due = next((f for f in self.failures if f[0] > 0), None)
        if due is None:
            return None
        due[0] -= 1
        return due[1]

    def refuse(self, client: str) -> bool:
        """Count one request from `client`; whether it must be refused."""
        self.seen[client] += 1
        return self.seen[client] <= self.per_client


class DataPlane:
    """The part every data-plane fake has: its access log, its refusals, and the calls the box makes on them."""

    def __init__(self) -> None:
        self.accesses: list[Access] = []
        self.refusals = Refusals()

    def refuse_first(self, per_client: int = 1) -> None:
        """Answer 403 (in the service's own shape) to each client address's first `per_client` requests."""
        self.refusals.refuse_first(per_client)

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests (any client) with `status` (503: the service is unavailable)."""
        self.refusals.fail_next(count, status)

    def close(self) -> None:
        return None


def record(log: list[Access], client: str | None, resource: str, authorization: str) -> Access:
    access = Access(client or "", resource, authorization, time.time())
    log.append(access)
    return access


def bearer(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" (none, or another scheme)."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT with these claims and no signature (`alg: none`): what an Entra ID access token carries, for fakes
    that check its audience; no fake verifies signatures."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part(claims)}."


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT bearer token, or None if it is not one (an opaque test token is accepted as is)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None
