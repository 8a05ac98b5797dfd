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
    rate_per_s: float = Field(default=20.0, gt=0, le=10_000)
    """The most agent reads the backstop starts per second, evenly spaced: its cost at rest (about 20 reads/s
    kept the controller near 5 % of a core at 10,000 agents, docs/performance.md) and, over many agents, its
    round's length (10,000 agents / 20 per s = 500 s: a lost push is caught within that)."""
    max_in_flight: int = Field(default=16, ge=1, le=10_000)
    """The poll's requests on the wire at once; fewer than `agents.max_in_flight`, so drains never queue
    behind a round."""
