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
    (docs/agent.md); a round starts this long after the previous one started."""
    max_in_flight: int = Field(default=16, ge=1, le=10_000)
    """The poll's requests on the wire at once; fewer than `agents.max_in_flight`, so drains never queue
    behind a round."""
