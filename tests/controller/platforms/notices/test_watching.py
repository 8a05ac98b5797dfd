"""The local source turns the notices each host's agent holds into lifecycle events, once each."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from controller.core.models import EventKind
from controller.core.operator import drain_event, reset_event
from controller.hosts.client import AgentUnreachable, Notice
from controller.platforms.notices.watching import LocalSource
from tests.support.tasks import async_test


class Agent:
    def __init__(self, *notices: Notice) -> None:
        self.notices_held = list(notices)
        self.down = False

    async def notices(self) -> Sequence[Notice]:
        if self.down:
            raise AgentUnreachable("agent http://127.0.0.1:9 unreachable: ConnectError")
        return self.notices_held


def _notice(notice_id: str, *, state: str = "open", kind: str = "terminate", not_after: float = 100.0) -> Notice:
    return Notice(id=notice_id, kind=kind, not_after=not_after, state=state, drain_started_by=None, reset=None,
                  released_at=None)


@async_test
async def test_open_notices_become_events_once_and_released_ones_never() -> None:
    a = Agent(_notice("n1"), _notice("n0", state="released"))
    b = Agent(_notice("n2", state="draining", kind="preempt", not_after=50.0))
    source = LocalSource({"A": a, "B": b}, poll_interval_s=1.0)

    first = await source.poll()
    assert sorted((e.instance, e.ref, e.kind, e.not_after) for e in first) == [
        ("A", "n1", EventKind.TERMINATE, 100.0),
        ("B", "n2", EventKind.PREEMPT, 50.0),
    ]
    assert all(e.source == "local" for e in first)
    assert await source.poll() == []
    a.notices_held.append(_notice("n3", kind="something-new"))
    [later] = await source.poll()
    assert later.ref == "n3" and later.kind is EventKind.TERMINATE


@async_test
async def test_the_same_notice_seen_by_two_controllers_has_the_same_event_id() -> None:
    agent = Agent(_notice("n1"))
    [one] = await LocalSource({"A": agent}, poll_interval_s=1.0).poll()
    [two] = await LocalSource({"A": agent}, poll_interval_s=1.0).poll()
    assert one.id == two.id


@async_test
async def test_an_unreachable_agent_is_logged_once_and_the_others_are_still_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Agent(_notice("x"))
    down.down = True
    source = LocalSource({"A": down, "B": Agent(_notice("n2"))}, poll_interval_s=1.0)
    with caplog.at_level(logging.INFO, logger="drainctl.platforms.notices.watching"):
        [event] = await source.poll()
        await source.poll()
        assert event.instance == "B"
        assert sum("cannot read A's notices" in r.getMessage() for r in caplog.records) == 1
        down.down = False
        [recovered] = await source.poll()
    assert recovered.instance == "A"
    assert any("reading A's notices again" in r.getMessage() for r in caplog.records)


@async_test
async def test_watch_yields_the_first_round_without_waiting() -> None:
    source = LocalSource({"A": Agent(_notice("n1"))}, poll_interval_s=3600.0)
    event = await anext(aiter(source.watch()))
    assert event.ref == "n1"


def test_manual_events_carry_the_operators_deadline_and_rate() -> None:
    event = drain_event("A", now=1000.0, deadline_s=30.0, rate_per_s=50.0, request_id="r1")
    assert (event.kind, event.source, event.not_after, event.rate_per_s, event.drain_deadline_s) == (
        EventKind.MANUAL, "manual", 1030.0, 50.0, 30.0
    )
    assert drain_event("A", now=1000.0, deadline_s=30.0, rate_per_s=50.0, request_id="r1").id == event.id
    assert drain_event("A", now=1000.0, deadline_s=30.0, rate_per_s=50.0, request_id="r2").id != event.id
    assert reset_event("A", now=1000.0).kind is EventKind.RESET
    with pytest.raises(ValueError, match="rate_per_s"):
        drain_event("A", now=0.0, deadline_s=1.0, rate_per_s=0.0)
