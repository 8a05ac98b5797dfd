"""An agent's push of a notice to the controller's API, on the wire: the path, the bodies, the leader hint.

The agent (`controller/agent/pushing.py`) sends it the moment it sees a notice; the controller's route
(`controller/api/pushes.py`) takes it. It carries the agent's instance name and the URL the controller should
call back, so a push from an instance no config or discovery has listed yet can still be drained. A standby
controller answers 421 or 503 and may say where the leader is (`leader_url` in the body, or the
`Drainctl-Leader` header); the agent follows that once. Same compatibility rule as `agent.py`: requests
strict, answers lenient. Imports only pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from controller.protocol.agent import NoticeRequest

PUSHES = "/v1/pushes"
LEADER_HEADERS = ("Drainctl-Leader", "X-Drainctl-Leader")
"""Where a standby says the leader is (the second is the HA branch's spelling; either is read)."""
NOT_THE_LEADER = frozenset({421, 503})

Name = Annotated[str, Field(min_length=1, max_length=256)]


class PushRequest(BaseModel):
    """`POST /v1/pushes` with the push token: a notice this agent has just seen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance: Name
    """The agent's instance name (agent.yaml `instance`), as the controller knows it."""
    agent_url: Annotated[str, Field(pattern=r"^https?://[^/\s]+", max_length=2048)]
    """Where the controller reaches this agent's API (agent.yaml `push.advertise_url`)."""
    pool: Name | None = None
    """The instance's disruption-budget pool, for a controller that learns it from this push."""
    notice: NoticeRequest


class PushAnswer(BaseModel):
    """`202`: the notice became an event (`disposition`: started, merged, duplicate or stale)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    disposition: str
    drain_id: int | None = None
    learned: bool = False
    """The controller did not know the instance before this push."""
    start_by: float | None = None
    """Started or merged: the unix time by which the controller's plan requests the drain of this episode, even
    while the disruption budget holds it back. The agent's fallback waits for the controller until then (plus its
    grace) instead of draining alone after its grace: a drain the controller queues is the budget at work, and an
    agent that drained on its own would break it. Absent (an older controller): the fallback's grace alone."""


class NotLeaderAnswer(BaseModel):
    """A standby's 421/503: where the leader is, when it knows."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    error: str = ""
    leader_url: str | None = None
    leader: str | None = None
    """The HA branch's key for the same URL."""
