"""Issue 9, timing: a slow but moving drain is not forced early (case 7), and a wall-clock step neither forces a
moving drain nor delays forcing a stuck one (case 8). Fakes and a fake clock (tests/controller/engine/fakes.py)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.announcements import Announcement, Resumed
from controller.core.models import EventKind, LifecycleEvent, Outcome, Phase
from controller.hosts.client import AgentTimeout
from tests.controller.engine.fakes import BUDGET, FakeClock, FakeHost, make_world
from tests.support.tasks import async_test
from tests.support.waiting import until


@dataclass
class FirstCountFails(FakeHost):
    """The kernel count fails once (`ss` timed out), at the first look after the drain request."""

    failed: bool = False

    async def connections(self) -> int:
        if not self.failed:
            self.failed = True
            raise AgentTimeout("agent: GET /v1/connections: ss did not answer in 2 s")
        return await super().connections()


@async_test
async def test_a_drain_slower_than_one_socket_per_window_is_not_forced_while_it_moves(tmp_path: Path) -> None:
    """issue 9, case 7: a drain at 0.2 sockets/s (one every 5 s, `--rate 0.2`) against a 3 s no-progress window
    always looked stuck and was reset; the window stretches with the rate, so it drains gracefully."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=3)
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": host})
    assert BUDGET.no_progress_window_s < 1 / 0.2
    world.engine.submit(LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=clock.now() + 600,
                                              source="local", ref="n-1", rate_per_s=0.2))

    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.outcome is Outcome.GRACEFUL, drain.reason
    assert host.resets == [], "a moving drain is never reset"


@async_test
async def test_a_prometheus_baseline_does_not_make_a_falling_kernel_count_look_stuck(tmp_path: Path) -> None:
    """issue 9, case 7: the first look counted by Prometheus only (10: the app's gauge misses half-open sockets),
    later looks by the kernel (15, 14, ...: falling); comparing the kernel with the Prometheus baseline looked
    stuck and forced the drain. Progress compares kernel with kernel, so it drains gracefully."""
    clock = FakeClock()
    host = FirstCountFails(clock, sockets=15, app_rate_per_s=1.0)
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": host})
    world.gauge.values["A"] = 10
    world.engine.submit(world.notice("A", in_s=600))

    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.outcome is Outcome.GRACEFUL, drain.reason
    assert host.resets == [] and drain.verified_by == "kernel"


@async_test
async def test_a_wall_clock_step_forward_does_not_force_a_moving_drain(tmp_path: Path) -> None:
    """issue 9, case 8: the no-progress window is a duration: a wall-clock step of +5 s in a drain that loses a
    socket every second must not make it look stuck for 5 s (it was reset at once)."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=10, app_rate_per_s=1.0)
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": host})
    world.engine.submit(world.notice("A", in_s=600))
    await world.advance(4.2)

    clock.step(5.0)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.outcome is Outcome.GRACEFUL, drain.reason
    assert host.resets == []


@dataclass
class ResetClockedHost(FakeHost):
    """Records the monotonic (true) time of each reset, which a wall-clock step does not move."""

    reset_at: list[float] = field(default_factory=list)

    async def reset(self) -> int:
        self.reset_at.append(self.clock.monotonic())
        return await super().reset()


@async_test
async def test_a_wall_clock_step_back_does_not_delay_forcing_a_stuck_drain(tmp_path: Path) -> None:
    """issue 9, case 8: a server that ignores the drain is reset one no-progress window (3 s) after the drain
    request; a wall-clock step back of 10 s a second in delayed the reset by 10 s (the window and the next pass
    were both waited for on the wall clock)."""
    clock = FakeClock()
    host = ResetClockedHost(clock, sockets=50, behaviour="ignore")
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": host})
    requested_at = clock.monotonic()
    world.engine.submit(world.notice("A", in_s=600))
    await world.advance(1.0)

    clock.step(-10.0)
    await world.advance(5.0)

    assert len(host.reset_at) == 1, "reset within the window, not 10 s later"
    assert host.reset_at[0] - requested_at <= BUDGET.no_progress_window_s + 1.0


@async_test
async def test_the_daemon_does_not_sleep_through_a_pass_after_a_wall_clock_step_forward(tmp_path: Path) -> None:
    """issue 9, case 8 (a leftover): `Engine.run` slept until the next due pass on the event loop's monotonic clock,
    computed from the wall clock before a step: after a forward step the pass came late by the size of the step.
    Here a failed episode holds until its release deadline, over 20 s away; the wall clock steps to it."""
    clock = FakeClock()
    resumed: list[Resumed] = []
    world = make_world(tmp_path / "journal.db", hosts={"A": FakeHost(clock, behaviour="unauthorized")}, clock=clock,
                       listeners=[Heard(resumed)])
    world.engine.submit(world.notice("A", in_s=60, ref="n1"))
    await world.advance(25.0)  # no count: reset at the drain deadline; refused (401): failed, held to its deadline
    failed = world.engine.get("A")
    assert failed is not None and failed.phase is Phase.FAILED and failed.release_by is not None
    assert failed.release_by - clock.now() > 20 and not world.releaser.releases
    running = asyncio.create_task(world.engine.run([]))
    try:
        # the daemon resumed from the journal and went to sleep until the episode's release deadline
        await until(lambda: len(resumed) == 2, what="the daemon to resume the episode")
        clock.step(failed.release_by - clock.now())
        await until(lambda: world.releaser.releases, within_s=20.0, what="the release once the deadline came")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    [release] = world.releaser.releases
    assert release.refs == ("n1",)


@dataclass
class Heard:
    """A listener that keeps every `Resumed` the engine announces (at construction and as `run()` starts)."""

    resumed: list[Resumed]

    def hear(self, announcement: Announcement) -> None:
        if isinstance(announcement, Resumed):
            self.resumed.append(announcement)
