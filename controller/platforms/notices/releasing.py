"""Tell the platform it may proceed: the last step of every drain, and always before the platform's deadline.

Each source has its own platform hold (DESIGN.md §4, "Platform hold / release"). A `Releaser` knows whether
its platform holds at all (`holds`) and how to let go of its platform's handles of an episode (the engine hands
each source's releaser only its own: an episode can hold handles of several platforms, `Drain.refs`).
Releases must be idempotent: a controller that crashed after releasing releases again on resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from controller.core.models import Drain
from controller.core.ports import UnknownHost


class NoticeReleaser(Protocol):
    async def release(self, notice_id: str) -> None: ...


class AgentNoticeRelease:
    """The local platform (testbed supervisor): a notice is released by telling the host's agent."""

    holds = True

    def __init__(self, agents: Mapping[str, NoticeReleaser]) -> None:
        self._agents = agents

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        agent = self._agents.get(drain.instance)
        if agent is None:
            raise UnknownHost(f"{drain.instance}: not in the inventory, cannot release its notices")
        for ref in handles:
            await agent.release(ref)
