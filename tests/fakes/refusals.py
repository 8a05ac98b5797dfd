"""What the data-plane fakes (Secret Manager, Cloud Storage, Key Vault, Blob) share: the log of every access
and "the grant does not exist yet" as a per-client refusal.

A VM's first read of a secret often comes before the IAM grant (or role assignment) that allows it has
propagated: the cloud answers 403 and a correct boot script retries (contracts C1, `retry`). `Refusals` plays
that race deterministically: `refuse_first(per_client=1)` refuses each client address's first request, so the
box can assert that every VM got a 403 and then its secret.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass


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

    def refuse_first(self, per_client: int = 1) -> None:
        """From now on, each client's first `per_client` requests are refused (counts start afresh)."""
        self.per_client = per_client
        self.seen.clear()

    def refuse(self, client: str) -> bool:
        """Count one request from `client`; whether it must be refused."""
        self.seen[client] += 1
        return self.seen[client] <= self.per_client


def record(log: list[Access], client: str | None, resource: str, authorization: str) -> Access:
    access = Access(client or "", resource, authorization, time.time())
    log.append(access)
    return access


def bearer(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, or "" (none, or another scheme)."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
