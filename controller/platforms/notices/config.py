"""The `sources.local` section: the agents' notices, read by polling every agent of the static inventory.

The section keeps its historical name `local` (and so does the source's name in the journal and metrics):
journals and configs written before this platform got its package still work.
"""

from __future__ import annotations

from pydantic import Field

from controller.core.settings import Frozen, Seconds


class LocalSourceConfig(Frozen):
    enabled: bool = True
    poll_interval_s: Seconds = 30.0
    """How often each agent's notices are read: a backstop, since agents push each notice at once
    (docs/agent.md); a round starts this long after the previous one started, or at once when it took longer
    (a round takes at least agents / `rate_per_s`)."""
    rate_per_s: float = Field(default=10.0, gt=0, le=10_000)
    """The most agent reads the backstop starts per second, evenly spaced: its cost at rest (each read is a new
    connection to another host, ~3 ms of CPU here: 10/s kept a controller of 10,000 agents at 3.8 % of a core,
    20/s at 7 %, docs/performance.md) and, over many agents, its round's length (10,000 agents / 10 per s =
    1,000 s: a lost push is caught within that; agents retry every push until it is taken, so that is rare)."""
    max_in_flight: int = Field(default=16, ge=1, le=10_000)
    """The poll's requests on the wire at once; fewer than `agents.max_in_flight`, so drains never queue
    behind a round."""
