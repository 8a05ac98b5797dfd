"""What on-call uses through the engine: manual drains (--deadline, --rate), resets, dry runs, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.errors import PermanentError
from controller.core.models import Disposition, EventKind, Outcome, Phase
from controller.engine import ManualDisabled, UnknownInstance
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.support.tasks import async_test


@async_test
async def test_a_manual_drain_uses_the_operators_rate_and_releases_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    submission = world.engine.drain("A", deadline_s=10, rate_per_s=100)
    assert submission.disposition is Disposition.STARTED
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert [rate for _, rate in host.drains] == [100.0]
    assert drain.kind is EventKind.MANUAL and not drain.needs_release
    assert drain.phase is Phase.RELEASED and drain.outcome is Outcome.GRACEFUL
    assert world.releaser.releases == []


@async_test
async def test_a_manual_drain_of_a_server_that_ignores_it_resets_at_no_progress(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    start = clock.now()
    world.engine.drain("A", deadline_s=30)
    await world.settle()
    [(reset_at, count)] = host.resets
    assert count == 300 and reset_at - start < 4


@async_test
async def test_a_retried_manual_request_with_the_same_id_is_a_duplicate(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    assert world.engine.drain("A", deadline_s=10, request_id="req-1").disposition is Disposition.STARTED
    assert world.engine.drain("A", deadline_s=10, request_id="req-1").disposition is Disposition.DUPLICATE


@async_test
async def test_a_manual_request_retried_later_with_the_same_id_sends_one_drain_request(tmp_path: Path) -> None:
    """issue 9, case 10: a retry of a manual drain (same request id, sent later) is a duplicate, not a second drain."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    assert world.engine.drain("A", deadline_s=10, request_id="req-1").disposition is Disposition.STARTED
    await world.advance(0.5)
    retried = world.engine.drain("A", deadline_s=10, request_id="req-1")
    await world.settle()
    after_finish = world.engine.drain("A", deadline_s=10, request_id="req-1")
    await world.settle()
    assert retried.disposition is Disposition.DUPLICATE and after_finish.disposition is Disposition.DUPLICATE
    assert len(host.drains) == 1
    assert len(world.engine.history(instance="A")) == 1


@async_test
async def test_reset_of_an_idle_instance_resets_at_once_without_a_drain(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=42)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    drain = await world.engine.reset("A")
    assert host.resets == [(clock.now(), 42)] and host.drains == []
    assert drain.kind is EventKind.RESET and drain.phase is Phase.RELEASED and drain.sockets_reset == 42
    assert drain.reason == "operator reset"


@async_test
async def test_reset_forces_a_running_drain_now(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=500, app_rate_per_s=10)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.advance(1.0)
    drain = await world.engine.reset("A")
    assert len(host.resets) == 1 and host.resets[0][0] == clock.now()
    assert drain.outcome is Outcome.FORCED and drain.phase is Phase.RELEASED
    assert len(host.drains) == 1 and len(world.releaser.releases) == 1


@async_test
async def test_reset_of_an_unknown_instance_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    with pytest.raises(UnknownInstance):
        await world.engine.reset("nope")


@async_test
async def test_a_dry_run_says_what_would_happen_and_changes_nothing(tmp_path: Path) -> None:
    clock = FakeClock()
    world = make_world(tmp_path / "journal.db", hosts={"A": FakeHost(clock), "B": FakeHost(clock)}, clock=clock)
    event = world.engine.manual_event("A", deadline_s=15, rate_per_s=50)
    preview = world.engine.dry_run(event)
    assert preview.disposition is Disposition.STARTED and preview.would_start_now
    assert preview.plan is not None and preview.plan.force_at == clock.now() + 15 and preview.rate_per_s == 50
    assert world.engine.history() == [] and world.store.events() == []

    world.engine.submit(world.notice("B", in_s=60))
    await world.advance(0.1)
    waiting = world.engine.dry_run(world.notice("A", in_s=300))
    assert not waiting.would_start_now and "waiting for the disruption budget" in waiting.why


@async_test
async def test_manual_drains_can_be_disabled(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    world.engine._manual_enabled = False
    with pytest.raises(ManualDisabled, match=r"sources\.manual\.enabled"):
        world.engine.drain("A")


@async_test
async def test_a_nonsense_manual_deadline_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    with pytest.raises(PermanentError, match="deadline_s must be positive"):
        world.engine.drain("A", deadline_s=-1)


@async_test
async def test_status_shows_every_instance_with_live_counts_while_draining(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {"A": FakeHost(clock, sockets=1000, app_rate_per_s=100), "B": FakeHost(clock)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock)
    world.engine.submit(world.notice("A"))
    await world.advance(2.0)
    status = {s.instance: s for s in world.engine.status()}
    assert set(status) == {"A", "B"}
    assert status["B"].drain is None
    a = status["A"]
    assert a.drain is not None and a.drain.phase is Phase.VERIFYING
    assert a.observation is not None and a.observation.kernel == 800 and a.observed_at == clock.now()


@async_test
async def test_a_dry_run_of_a_manual_drain_after_a_released_platform_drain_says_it_starts_and_it_does(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=600, ref="long-notice"))
    await world.settle()
    assert world.engine.get("A") is not None and world.releaser.releases, "the platform drain ran and was released"

    event = world.engine.manual_event("A", deadline_s=10)
    preview = world.engine.dry_run(event)
    submitted = world.engine.submit(event)

    assert preview.disposition is Disposition.STARTED and preview.would_start_now, preview.why
    assert submitted.disposition is Disposition.STARTED, "the dry run said what the drain then did"
    await world.settle()
    assert len(host.drains) == 2


@async_test
async def test_an_unknown_instance_in_a_large_fleet_names_the_closest_not_all(tmp_path: Path) -> None:
    """A typo against 10,000 instances gets a one-line error naming the near misses, not a 100 KB line."""
    clock = FakeClock()
    hosts = {f"api-{n:05d}": FakeHost(clock) for n in range(10_000)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock)
    with pytest.raises(UnknownInstance) as refused:
        await world.engine.reset("api-00042x")
    message = str(refused.value)
    assert message.startswith("unknown instance 'api-00042x' (10000 known; closest: ")
    assert "api-00042" in message and len(message) < 200
