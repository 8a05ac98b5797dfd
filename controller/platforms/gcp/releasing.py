"""The GCP release: the guest's shutdown hook may return. The controller says so through the instance's agent.

GCP has no lifecycle hook to complete (DESIGN.md §4): the hold is the graceful-shutdown window, during which the
guest's shutdown runs `drainctl agent hold` (the agent's systemd unit's ExecStop), which blocks until every open
notice on the agent is released. So releasing a GCP drain means, on the instance's agent: record the MIG's
event as a notice (id = the event's ref; idempotent) and release it, then release every other notice the
controller's drain covered (`drain_started_by == "controller"`), e.g. the one the shutdown hold opened itself
when the guest's shutdown began before the controller's drain did. Idempotent: releasing twice is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.core.models import Drain
from controller.core.ports import UnknownHost
from controller.protocol.agent import Notice


class GuestAgent(Protocol):
    async def post_notice(self, notice_id: str, kind: str, not_after: float) -> Notice: ...

    async def notices(self) -> list[Notice]: ...

    async def release(self, notice_id: str) -> None: ...


class ShutdownHookRelease:
    """Release of the gcp source: tell the instance's agent its drain is done, so the shutdown hook returns."""

    holds = True

    def __init__(self, agents: Mapping[str, GuestAgent]) -> None:
        self._agents = agents

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        agent = self._agents.get(drain.instance)
        if agent is None:
            raise UnknownHost(f"{drain.instance}: not in the inventory, cannot tell its agent the drain is done")
        for ref in handles:
            await agent.post_notice(ref, drain.kind.value, drain.not_after)
            await agent.release(ref)
        for notice in await agent.notices():
            if notice.state != "released" and notice.drain_started_by == "controller":
                await agent.release(notice.id)
