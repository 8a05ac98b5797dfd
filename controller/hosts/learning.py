"""What the push route learns into: the fleet, which takes an agent that no config and no discovery listed yet.

An agent's push (`POST /v1/pushes`, validated by the push token in `controller/api/pushes.py`) carries its
instance name and the URL the controller should call back, so a notice from an instance that no config and no
discovery round has listed yet is still drained (DESIGN.md §10). There is one map of agents, the `Fleet`
(`controller/hosts/fleet.py`): a learned instance is its member with platform "push", reached with the fleet's
agent token (`agents.token_file`) through the shared pool, in the pool the push names (else
`agents.learned_pool`), and dropped like any member once gone and idle. A name already known keeps its
address: a push never redirects the controller's calls for an instance it knows.
"""

from __future__ import annotations

from typing import Protocol


class KnownAgents(Protocol):
    """The agents the controller knows, as the push route sees them (the `Fleet` is the one)."""

    @property
    def can_learn(self) -> bool:
        """Whether a push from an unknown instance can be taken (the fleet's agent token is configured)."""
        ...

    def learn(self, instance: str, agent_url: str, pool: str) -> bool:
        """Know `instance` from now on; False when it was already known. `UnknownHost` when it cannot learn."""
        ...
