"""Duplicate and out-of-order lifecycle events cause exactly one drain; a genuinely new one causes another."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.models import Disposition, EventKind, LifecycleEvent, Phase
from controller.engine import UnknownInstance
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.support.tasks import async_test


def test_event_ids_are_deterministic() -> None:
    first = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=100.0, source="azure", ref="e1")
    again = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=100.0, source="azure", ref="e1")
    other = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=100.0, source="azure", ref="e2")
    assert first == again and first.id == again.id
    assert other.id != first.id


@async_test
async def test_the_same_event_three_times_causes_one_drain(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=500)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = world.notice("A", in_s=60)

    dispositions = [world.engine.submit(event).disposition]
    await world.advance(0.2)
    dispositions.append(world.engine.submit(event).disposition)
    await world.settle()
    dispositions.append(world.engine.submit(event).disposition)
    await world.settle()

    assert dispositions == [Disposition.STARTED, Disposition.DUPLICATE, Disposition.DUPLICATE]
    assert len(host.drains) == 1
    assert len(world.engine.history(instance="A")) == 1
    assert len(world.releaser.releases) == 1


@async_test
async def test_events_out_of_order_cause_one_drain_and_the_earliest_deadline_holds(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=500, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    newer = world.notice("A", in_s=90, ref="second")
    older = world.notice("A", in_s=60, ref="first")

    assert world.engine.submit(newer).disposition is Disposition.STARTED
    assert world.engine.submit(older).disposition is Disposition.MERGED
    assert world.engine.submit(newer).disposition is Disposition.DUPLICATE
    await world.settle()
    late_copy = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=older.not_after - 1,
                                      source="local", ref="first")  # the same handle, already released
    assert world.engine.submit(late_copy).disposition is Disposition.STALE
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert len(host.drains) == 1 and len(host.resets) == 1
    assert drain.not_after == older.not_after, "an earlier deadline among the events must win"
    [release] = world.releaser.releases
    assert set(release.refs) == {"first", "second"}, "every merged notice is released"
    assert release.at < older.not_after


@async_test
async def test_an_older_copy_of_a_released_notice_after_the_drain_finished_does_not_drain_again(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    newer = world.notice("A", in_s=90, ref="n1")
    older = world.notice("A", in_s=60, ref="n1")
    world.engine.submit(newer)
    await world.settle()
    assert world.engine.submit(older).disposition is Disposition.STALE
    await world.settle()
    assert len(host.drains) == 1 and len(world.releaser.releases) == 1
    assert [e["disposition"] for e in world.store.events(instance="A")] == ["started", "stale"]


@async_test
async def test_an_older_notice_with_its_own_handle_after_the_drain_finished_is_released_in_time(
    tmp_path: Path,
) -> None:
    """issue 9, beyond the eleven (the simulation's "stale handle"): an older notice with a handle of its own,
    delivered after its episode was released, used to be judged stale and its handle was never released."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=90, ref="n2"))
    await world.settle()
    older = world.notice("A", in_s=60, ref="n1")
    assert world.engine.submit(older).disposition is Disposition.STARTED
    await world.settle()
    first, second = world.releaser.releases
    assert first.refs == ("n2",) and second.refs == ("n1",), "each handle released once"
    assert second.at < older.not_after
    assert host.remaining() == 0 and host.counts >= 2, "counted again at zero before the second release"


@async_test
async def test_a_new_lifecycle_event_after_a_finished_drain_drains_again(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=60))
    await world.settle()
    host.refill(80)  # the instance was reused and took new clients
    second = world.notice("A", in_s=60, ref="notice-A-again")  # a new notice has a handle of its own
    assert world.engine.submit(second).disposition is Disposition.STARTED
    await world.settle()
    assert len(host.drains) == 2
    assert world.engine.history(instance="A")[0].sockets_before == 80
    assert [d.phase for d in world.engine.history(instance="A")] == [Phase.RELEASED, Phase.RELEASED]


@async_test
async def test_an_event_for_an_unknown_instance_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    with pytest.raises(UnknownInstance, match="unknown instance 'Z'"):
        world.engine.submit(world.notice("Z"))
    assert world.store.events() == []


@async_test
async def test_an_operators_drain_after_a_finished_platform_drain_drains_again(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=600, ref="long-notice"))
    await world.settle()
    assert len(host.drains) == 1

    manual = world.engine.drain("A", deadline_s=10)

    assert manual.disposition is Disposition.STARTED, "an operator's drain is a new intent, never stale"
    await world.settle()
    assert len(host.drains) == 2
