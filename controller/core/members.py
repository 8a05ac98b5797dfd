"""What a platform's discovery says about one instance: its pool, where its agent listens, its handles.

Discovery (DESIGN.md §10) turns a platform's listing (a MIG's managed instances, a scale set's VMs) into these;
the fleet (`controller/hosts/fleet.py`) keeps them as the one inventory of the process. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Member:
    """One discovered instance."""

    name: str
    """The instance's name as events carry it (a GCE instance name; Azure's `<scale set>_<instance id>`)."""
    pool: str
    """Its disruption-budget pool."""
    agent_url: str
    """Its node agent's base URL, e.g. http://10.0.0.5:9100."""
    agent_token: str = field(repr=False, compare=False)
    """The agent's bearer token (the fleet's one token file); never logged."""
    platform: str = ""
    """The platform that discovered it."""
    handles: Mapping[str, str] = field(default_factory=dict)
    """The platform's own names for it (zone, instance id, resource id), for logs and releases."""
