"""How long each client was really offline, including the time it sat on a silent socket without knowing.

The swarm measures an outage from the moment a client *noticed* it (a close, a reset) to its next join. A
client on a SIGSTOPped server notices nothing: its socket looks alive while nothing answers, which is the
incident. So for a client whose server was stopped, its outage starts when the server stopped; a client
still on a stopped server when the run ended has been offline since the stop and is "stuck".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from testbed.swarm.reporting import nearest_rank

OFFLINE_LIMIT_S = 5.0
"""The demo's promise: with the controller, no client is offline longer than this."""


@dataclass(frozen=True)
class Outages:
    clients: int
    max_s: float
    """The longest outage of any client (stuck clients count until the end of the run)."""
    p99_s: float
    """99th percentile (nearest rank) of each client's longest outage, over every client (0 if never offline)."""
    over_limit: int
    """Clients offline longer than OFFLINE_LIMIT_S at least once."""
    stuck_at_end: int
    """Clients still on a stopped server when the run ended."""
    never_rejoined: int
    """Clients that noticed an outage and had not joined again when the run ended."""


def client_outages(report: Mapping[str, Any], *, stopped_at: Mapping[str, float], ended_at: float) -> Outages:
    """Per-client longest outage from the swarm's report, with silent time on `stopped_at` servers counted."""
    longest = [0.0] * int(report["clients"])
    never_rejoined = 0
    for disconnect in report["disconnects"]:
        start = _silent_since(disconnect, stopped_at)
        if disconnect["offline_s"] is None:
            never_rejoined += 1
            end = ended_at
        else:
            end = float(disconnect["at"]) + float(disconnect["offline_s"])
        client = int(disconnect["client"])
        longest[client] = max(longest[client], end - start)
    stuck = 0
    for client in report["per_client"]:
        stop = stopped_at.get(client["server"] or "")
        if stop is not None:
            stuck += 1
            longest[int(client["client"])] = max(longest[int(client["client"])], ended_at - stop)
    return Outages(
        clients=len(longest),
        max_s=max(longest, default=0.0),
        p99_s=nearest_rank(longest, 99) or 0.0,
        over_limit=sum(1 for value in longest if value > OFFLINE_LIMIT_S),
        stuck_at_end=stuck,
        never_rejoined=never_rejoined,
    )


def _silent_since(disconnect: Mapping[str, Any], stopped_at: Mapping[str, float]) -> float:
    """When the outage began: the server's stop if it was stopped before the client noticed, else the notice."""
    noticed = float(disconnect["at"])
    stop = stopped_at.get(disconnect["server"] or "")
    return stop if stop is not None and stop <= noticed else noticed
