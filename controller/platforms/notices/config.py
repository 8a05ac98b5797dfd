"""The `sources.local` section: the agents' notices, read by polling every agent of the static inventory.

The section keeps its historical name `local` (and so does the source's name in the journal and metrics):
journals and configs written before this platform got its package still work.
"""

from __future__ import annotations

from controller.core.settings import Frozen, Seconds


class LocalSourceConfig(Frozen):
    enabled: bool = True
    poll_interval_s: Seconds = 1.0
    """How often each agent's notices are read."""
