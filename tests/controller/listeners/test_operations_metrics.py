"""The metrics the alert rules and the dashboard read (deploy/prometheus/, deploy/grafana/): the release margin
of each released drain, journal errors by operation, each agent's reachability and the draining sockets."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from controller.core.errors import JournalError
from controller.hosts.client import AgentClient, AgentUnavailable, AgentUnreachable
from controller.hosts.reachability import AgentReachability
from controller.journal.counting import CountedJournal
from controller.journal.sqlite import SqliteJournal
from controller.listeners.draining import DrainingSockets
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world, metric
from tests.support.tasks import async_test


@async_test
async def test_a_released_drain_records_how_long_before_its_deadline_it_was_released(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    (drain,) = world.engine.history()
    assert drain.released_at is not None
    assert metric(world, "drainctl_release_margin_seconds_count") == 1
    assert metric(world, "drainctl_release_margin_seconds_sum") == pytest.approx(event.not_after - drain.released_at)
    assert 0 < metric(world, "drainctl_release_margin_seconds_sum") <= 60


@async_test
async def test_a_manual_drain_has_no_platform_and_no_release_margin(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    world.engine.drain("A")
    await world.settle()

    assert metric(world, "drainctl_drains_total", {"outcome": "graceful"}) == 1
    assert metric(world, "drainctl_release_margin_seconds_count") == 0


def test_journal_errors_are_counted_by_operation_and_still_raised(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    journal = CountedJournal(SqliteJournal(tmp_path / "journal.db"), registry)
    assert journal.latest("A") is None
    journal.inner.close()  # what a lost disk or database looks like from here: every call fails

    with pytest.raises(JournalError):
        journal.latest("A")
    with pytest.raises(JournalError):
        journal.unfinished()

    assert registry.get_sample_value("drainctl_journal_errors_total", {"operation": "read"}) == 2
    assert registry.get_sample_value("drainctl_journal_errors_total", {"operation": "write"}) == 0


@async_test
async def test_an_agent_is_down_when_unreachable_and_up_when_it_answers_even_with_an_error() -> None:
    registry = CollectorRegistry()
    reachability = AgentReachability(registry)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    down = AgentClient(f"http://127.0.0.1:{port}", "t", timeout_s=5, observe=reachability.observer("A"))
    busy = AgentClient("http://agent-b", "t", observe=reachability.observer("B"),
                       transport=httpx.MockTransport(lambda _: httpx.Response(503, json={"error": "ss timed out"})))
    try:
        with pytest.raises(AgentUnreachable):
            await down.connections()
        with pytest.raises(AgentUnavailable):
            await busy.connections()
    finally:
        await down.aclose()
        await busy.aclose()

    assert registry.get_sample_value("drainctl_agent_up", {"host": "A"}) == 0
    assert registry.get_sample_value("drainctl_agent_up", {"host": "B"}) == 1
    reachability.forget("A")
    assert registry.get_sample_value("drainctl_agent_up", {"host": "A"}) is None, "a deleted pod leaves no series"


@async_test
async def test_the_draining_sockets_are_those_of_running_drains_only(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {"A": FakeHost(clock, sockets=300, behaviour="ignore"), "B": FakeHost(clock)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=2)
    registry = CollectorRegistry()
    registry.register(DrainingSockets(world.engine.status))
    world.engine.submit(world.notice("A", in_s=60))
    world.engine.submit(world.notice("B", in_s=60))
    await world.advance(1.0)

    assert registry.get_sample_value("drainctl_draining_sockets", {"host": "A", "phase": "verifying"}) == 300
    assert registry.get_sample_value("drainctl_draining_sockets", {"host": "B", "phase": "verifying"}) is None
