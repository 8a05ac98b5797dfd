"""The drain paths of issue 5, on fakes with a fake clock: graceful, ignore-drain, slow, stopped, unreachable.

Each test follows one instance from its platform notice to its release and checks what an on-call engineer
or a client would notice: how many drain requests and resets, when the reset came, when the platform was
released (only after zero or a completed force, always before its deadline).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.core.models import Outcome, Phase
from controller.hosts.client import AgentUnreachable
from tests.controller.engine.fakes import BUDGET, SETTINGS, FakeClock, FakeHost, make_world, metric
from tests.support.tasks import async_test


@async_test
async def test_graceful_drain_is_released_only_after_the_verified_zero(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=1000)
    zero_seen_at: list[float] = []
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.releaser._on_release = lambda drain: zero_seen_at.append(host.remaining())
    event = world.notice("A", in_s=60)

    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert host.drains == [(event.not_after - 60, BUDGET.drain_rate_per_s)]
    assert host.resets == []
    assert drain.phase is Phase.RELEASED and drain.outcome is Outcome.GRACEFUL
    assert drain.verified_by == "kernel" and drain.sockets_before == 1000 and drain.sockets_reset == 0
    assert zero_seen_at == [0], "released while sockets were still open"
    [release] = world.releaser.releases
    assert release.refs == (event.ref,)
    assert release.at < event.not_after
    assert world.phases("A") == ["pending", "draining", "verifying", "drained", "released"]
    assert metric(world, "drainctl_drains_total", {"outcome": "graceful"}) == 1
    assert metric(world, "drainctl_instances", {"phase": "released"}) == 1


@async_test
async def test_a_server_that_ignores_drain_is_reset_within_the_no_progress_window(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=400, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.drain_requested_at is not None and drain.force_at is not None
    [(reset_at, reset_count)] = host.resets
    assert reset_count == 400
    window = BUDGET.no_progress_window_s
    assert drain.drain_requested_at + window <= reset_at <= drain.drain_requested_at + window + SETTINGS.poll_interval_s
    assert reset_at < drain.force_at - 10, "forced at the deadline, not on lack of progress"
    assert drain.outcome is Outcome.FORCED and drain.sockets_reset == 400
    assert drain.reason is not None and "no progress" in drain.reason
    assert [r.at for r in world.releaser.releases] == [reset_at]
    assert metric(world, "drainctl_sockets_reset_total") == 400
    assert metric(world, "drainctl_drains_total", {"outcome": "forced"}) == 1


@async_test
async def test_a_slow_but_moving_drain_is_not_forced_before_its_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=100, app_rate_per_s=2.0)  # 50 s of drain for a 20 s drain deadline
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=60))
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.drain_requested_at is not None
    [(reset_at, left)] = host.resets
    assert reset_at == pytest.approx(drain.drain_requested_at + BUDGET.drain_deadline_s)
    assert 0 < left < 100, "the drain was moving until the deadline"
    assert drain.reason is not None and "drain deadline" in drain.reason


@async_test
async def test_a_stopped_server_times_out_the_drain_and_is_still_reset(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=250, behaviour="stopped")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.drain_requested_at is not None
    assert len(host.drains) == 1, "a timed-out drain request must not be re-sent"
    assert "drain request failed" in " ".join(world.steps("A"))
    [(reset_at, reset_count)] = host.resets
    assert reset_count == 250
    assert reset_at - drain.drain_requested_at <= BUDGET.no_progress_window_s + SETTINGS.poll_interval_s
    assert drain.outcome is Outcome.FORCED and drain.phase is Phase.RELEASED
    assert world.releaser.releases[0].at < event.not_after


@async_test
async def test_an_unreachable_agent_fails_with_its_reason_and_is_released_before_the_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=300, behaviour="unreachable")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.gauge.values["A"] = 300  # Prometheus still sees the sockets: nothing drains them
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.release_by is not None
    assert drain.phase is Phase.FAILED and drain.outcome is Outcome.FAILED
    assert drain.reason is not None and "unreachable" in drain.reason
    [release] = world.releaser.releases
    assert drain.release_by <= release.at < event.not_after, "released early, or after the deadline"
    assert drain.released_at == release.at
    assert metric(world, "drainctl_drains_total", {"outcome": "failed"}) == 1
    assert metric(world, "drainctl_drain_failures_total", {"cause": "agent_unreachable"}) == 1
    assert any("failed" in r.getMessage() and "unreachable" in r.getMessage() for r in caplog.records)


@async_test
async def test_a_refused_token_fails_at_once_but_releases_only_at_the_release_deadline(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, behaviour="unauthorized")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.gauge.values["A"] = 100
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.advance(BUDGET.no_progress_window_s + 1)
    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.FAILED and "401" in (drain.reason or "")
    assert world.releaser.releases == [], "never release early: the host's own fallback may still drain it"

    await world.settle()
    [release] = world.releaser.releases
    assert release.at == pytest.approx(event.not_after - BUDGET.margin_s)


@async_test
async def test_prometheus_zero_does_not_verify_while_the_kernel_still_counts_sockets(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=50, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.gauge.values["A"] = 0  # the app's gauge says zero; half-open sockets say otherwise
    world.engine.submit(world.notice("A"))
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert drain.outcome is Outcome.FORCED and [count for _, count in host.resets] == [50]


@async_test
async def test_with_the_agent_unreachable_a_fresh_prometheus_zero_verifies(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, behaviour="unreachable")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.gauge.values["A"] = 0
    world.engine.submit(world.notice("A"))
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None
    assert drain.outcome is Outcome.GRACEFUL and drain.verified_by == "prometheus"
    assert drain.phase is Phase.RELEASED


@async_test
async def test_release_is_retried_through_temporary_errors(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    world.releaser.failures = [AgentUnreachable("agent unreachable"), AgentUnreachable("agent unreachable")]
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    assert world.releaser.attempts == 3 and len(world.releaser.releases) == 1
    assert world.releaser.releases[0].at < event.not_after


@async_test
async def test_release_is_given_up_when_the_platform_deadline_passes(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    world.releaser.always = AgentUnreachable("agent unreachable")
    event = world.notice("A", in_s=60)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.finished and drain.phase is Phase.FAILED
    assert drain.release_error is not None and "unreachable" in drain.release_error
    assert world.engine.next_due() is None, "a release that cannot happen must not be retried forever"


@pytest.mark.parametrize("behaviour", ["graceful", "ignore", "stopped", "unreachable", "unauthorized"])
@pytest.mark.parametrize("notice_s", [60.0, 12.0, 2.0])
@async_test
async def test_release_always_happens_before_the_platform_deadline(
    tmp_path: Path, behaviour: str, notice_s: float
) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=5000, behaviour=behaviour)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.gauge.values["A"] = 5000
    event = world.notice("A", in_s=notice_s)
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.finished
    [release] = world.releaser.releases
    assert release.at < event.not_after
    if drain.phase is Phase.RELEASED:
        assert drain.outcome in (Outcome.GRACEFUL, Outcome.FORCED)
        assert host.remaining() == 0 or drain.outcome is Outcome.FORCED


@async_test
async def test_a_short_notice_shrinks_every_phase_and_still_drains_first(tmp_path: Path) -> None:
    clock = FakeClock()
    host = FakeHost(clock, sockets=10_000, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    event = world.notice("A", in_s=6.0)  # shorter than drain 20 + verify 5 + margin 5
    world.engine.submit(event)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.drain_requested_at is not None
    assert len(host.drains) == 1, "even a short notice gets a graceful drain request first"
    [(reset_at, _)] = host.resets
    assert drain.drain_requested_at < reset_at < event.not_after - 1
    assert world.releaser.releases[0].at < event.not_after


@async_test
async def test_metrics_count_outcomes_phase_durations_resets_and_instances_per_phase(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {"A": FakeHost(clock, sockets=100), "B": FakeHost(clock, sockets=70, behaviour="ignore"),
             "C": FakeHost(clock, sockets=10, app_rate_per_s=0.001)}
    world = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=3)
    world.engine.submit(world.notice("A"))
    world.engine.submit(world.notice("B"))
    await world.settle()
    world.engine.submit(world.notice("C", in_s=300))
    await world.advance(0.1)

    assert metric(world, "drainctl_drains_total", {"outcome": "graceful"}) == 1
    assert metric(world, "drainctl_drains_total", {"outcome": "forced"}) == 1
    assert metric(world, "drainctl_drains_total", {"outcome": "failed"}) == 0
    assert metric(world, "drainctl_sockets_reset_total") == 70
    assert metric(world, "drainctl_instances", {"phase": "released"}) == 2
    assert metric(world, "drainctl_instances", {"phase": "verifying"}) == 1
    assert metric(world, "drainctl_phase_duration_seconds_count", {"phase": "verifying"}) == 2
    assert metric(world, "drainctl_phase_duration_seconds_sum", {"phase": "verifying"}) == pytest.approx(
        0.5 + BUDGET.no_progress_window_s  # A: one poll to zero at 500/s; B: the no-progress window
    )
    assert metric(world, "drainctl_events_total", {"source": "local", "disposition": "started"}) == 3
