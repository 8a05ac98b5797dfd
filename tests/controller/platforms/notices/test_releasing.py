"""Releases: the local platform releases every notice of an episode through the host's agent."""

from __future__ import annotations

import pytest

from controller.core.models import Drain, EventKind, Ref
from controller.core.ports import NothingToRelease, UnknownHost
from controller.platforms.notices.releasing import AgentNoticeRelease
from tests.support.tasks import async_test


class Agent:
    def __init__(self) -> None:
        self.released: list[str] = []

    async def release(self, notice_id: str) -> None:
        self.released.append(notice_id)


def _drain(instance: str, refs: tuple[str, ...]) -> Drain:
    return Drain(id=1, instance=instance, pool="web", source="local", kind=EventKind.TERMINATE, event_id="e",
                 not_after=100.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True,
                 refs=tuple(Ref("local", ref) for ref in refs))


@async_test
async def test_every_notice_of_the_episode_is_released_at_its_own_agent() -> None:
    a, b = Agent(), Agent()
    await AgentNoticeRelease({"A": a, "B": b}).release(_drain("A", ("n1", "n2")), ("n1", "n2"))
    assert a.released == ["n1", "n2"] and b.released == []


@async_test
async def test_an_instance_without_an_agent_cannot_be_released() -> None:
    with pytest.raises(UnknownHost, match="Z: not in the inventory"):
        await AgentNoticeRelease({}).release(_drain("Z", ("n1",)), ("n1",))


def test_manual_drains_hold_nothing() -> None:
    assert NothingToRelease.holds is False and AgentNoticeRelease.holds is True
