"""The disruption budget: at most K of a pool draining at once, earliest deadline first, deadlines still met."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from controller.config import PoolBudget
from controller.core.models import Drain, Phase
from tests.controller.engine.fakes import BUDGET, FakeClock, FakeHost, World, make_world
from tests.support.tasks import async_test


def _intervals(world: World) -> dict[str, tuple[float, float]]:
    """Per instance: (drain requested, left the budget) as the journal recorded them."""
    result = {}
    for drain in world.engine.history(limit=10_000):
        lines = world.engine.journal(drain.id)
        start = next(t.at for t in lines if t.phase is Phase.DRAINING)
        end = next(t.at for t in lines if t.phase in (Phase.DRAINED, Phase.FAILED))
        result[drain.instance] = (start, end)
    return result


def _most_at_once(intervals: dict[str, tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals.values()] + [(end, -1) for _, end in intervals.values()])
    most = current = 0
    for _, change in edges:  # an end at the same instant as a start sorts first (-1 < 1)
        current += change
        most = max(most, current)
    return most


@async_test
async def test_four_notices_with_a_budget_of_one_drain_one_at_a_time_earliest_deadline_first(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {name: FakeHost(clock, sockets=1000, behaviour="ignore" if name == "B" else "graceful")
             for name in "ABCD"}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=1)
    deadlines = {"A": 150.0, "B": 120.0, "C": 180.0, "D": 130.0}
    events = [world.notice(name, in_s=deadlines[name]) for name in "ABCD"]
    random.Random(5).shuffle(events)
    for event in events:
        world.engine.submit(event)
    await world.settle()

    intervals = _intervals(world)
    assert _most_at_once(intervals) == 1
    assert sorted(intervals, key=lambda name: intervals[name][0]) == ["B", "D", "A", "C"]
    for event in events:
        [release] = [r for r in world.releaser.releases if r.drain.instance == event.instance]
        assert release.at < event.not_after
    assert all(len(host.drains) == 1 for host in hosts.values())


@async_test
async def test_a_budget_of_two_runs_two_at_a_time(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {name: FakeHost(clock, sockets=1000, behaviour="ignore") for name in "ABCD"}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=2)
    for index, name in enumerate("ABCD"):
        world.engine.submit(world.notice(name, in_s=100 + index))
    await world.settle()
    assert _most_at_once(_intervals(world)) == 2


@async_test
async def test_pools_have_separate_budgets(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {name: FakeHost(clock, sockets=1000, behaviour="ignore") for name in "ABCD"}
    pools = {"A": "eu", "B": "eu", "C": "us", "D": "us"}
    world = make_world(tmp_path / "journal.db", hosts=hosts, pools=pools, clock=clock, slots=1)
    for name in "ABCD":
        world.engine.submit(world.notice(name, in_s=100))
    await world.advance(0.1)
    draining = {s.instance for s in world.engine.status() if s.drain is not None and s.drain.active}
    assert draining == {"A", "C"}


@async_test
async def test_the_deadline_overrides_the_budget(tmp_path: Path) -> None:
    """A drain waiting for a slot starts anyway when its deadline comes near, and is released in time."""
    clock = FakeClock()
    hosts = {"A": FakeHost(clock, sockets=1000, app_rate_per_s=10.0), "B": FakeHost(clock, sockets=1000)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=1)
    world.engine.submit(world.notice("A", in_s=60))  # slow: holds the only slot for its whole 20 s deadline
    await world.advance(0.1)
    b_event = world.notice("B", in_s=15)  # B's deadline comes before A frees the slot
    world.engine.submit(b_event)
    await world.advance(0.1)
    b = world.engine.get("B")
    assert b is not None and b.phase is Phase.PENDING

    await world.settle()
    a_start, a_end = _intervals(world)["A"]
    b_start, _ = _intervals(world)["B"]
    assert a_start < b_start < a_end, "B should have started beyond the budget"
    assert b_start == pytest.approx(b_event.not_after - BUDGET.verify_s - BUDGET.margin_s)
    [b_release] = [r for r in world.releaser.releases if r.drain.instance == "B"]
    assert b_release.at < b_event.not_after
    assert "beyond the budget" in " ".join(t.detail or "" for t in world.engine.journal(b.id))


def test_a_percentage_budget_rounds_down_but_allows_at_least_one() -> None:
    assert PoolBudget(max_draining_percent=25).slots(10) == 2
    assert PoolBudget(max_draining_percent=25).slots(3) == 1
    assert PoolBudget(max_draining=3).slots(1) == 3


def test_drains_in_the_budget_are_the_active_phases() -> None:
    draining = {phase for phase in Phase if Drain(id=1, instance="A", pool="p", source="s", kind="manual",  # type: ignore[arg-type]
                                                   event_id="e", not_after=0, rate_per_s=1, drain_deadline_s=1,
                                                   needs_release=False, phase=phase).active}
    assert draining == {Phase.DRAINING, Phase.VERIFYING, Phase.FORCING}


@async_test
async def test_a_storm_taken_in_one_commit_drains_within_the_budget_earliest_deadline_first(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {f"vm-{i:03d}": FakeHost(clock, sockets=50) for i in range(120)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=7)
    rng = random.Random(11)
    events = [world.notice(name, in_s=rng.uniform(200.0, 500.0)) for name in hosts]
    results = world.engine.submit_all(events)
    await world.settle()

    assert all(getattr(r, "disposition", None) is not None for r in results), results
    intervals = _intervals(world)
    assert len(intervals) == 120 and _most_at_once(intervals) <= 7
    deadlines = {e.instance: e.not_after for e in events}
    started = sorted(intervals, key=lambda name: (intervals[name][0], deadlines[name]))
    requested = [line.instance for line in world.engine.journal(limit=100_000) if line.step == "drain requested"]
    assert requested == sorted(requested, key=deadlines.__getitem__), "drain requests journaled out of deadline order"
    assert started == sorted(started, key=deadlines.__getitem__)
    late = [r for r in world.releaser.releases if r.at >= deadlines[r.drain.instance]]
    assert late == [] and len(world.releaser.releases) == 120
