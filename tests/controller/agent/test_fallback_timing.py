"""The local fallback's timing, on a fake clock: when it drains, when it resets, when it releases.

The kernel and the app are fakes here (a count that follows a script, a hook that records calls); the
real-socket behaviour of the same paths is in test_fallback.py. The last tests hold the fallback and the
controller's engine (on its own fakes, tests/controller/engine/fakes.py) to one no-progress rule.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from controller.agent.apphook import AppTimeout
from controller.agent.config import FallbackConfig
from controller.agent.fallback import Outcome, run_fallback
from controller.agent.metrics import AgentMetrics
from controller.agent.node import NodeAgent
from controller.agent.notices import LocalRelease, Notice, NoticeBook
from controller.core.errors import PermanentError
from tests.controller.engine.fakes import BUDGET, FakeHost, make_world
from tests.controller.engine.fakes import FakeClock as EngineClock

START_S = 1_700_000_000.0
CONFIG = FallbackConfig(grace_s=5.0, drain_rate_per_s=200, no_progress_window_s=3.0, reset_margin_s=5.0, poll_s=0.25)


class FakeClock:
    """Time moves only when the code under test sleeps; scheduled actions fire as time passes them."""

    def __init__(self) -> None:
        self.now_s = START_S
        self.monotonic_s = 1000.0
        self._actions: list[tuple[float, Callable[[], Any]]] = []

    def now(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.monotonic_s

    def step(self, seconds: float) -> None:
        """The wall clock jumps by `seconds` (negative: back); no time passes."""
        self.now_s += seconds

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0 and math.isfinite(seconds)
        self.now_s += seconds
        self.monotonic_s += seconds
        due = [action for action in self._actions if action[0] <= self.now_s]
        for action in sorted(due, key=lambda a: a[0]):
            self._actions.remove(action)
            result = action[1]()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0)

    def at(self, offset_s: float, action: Callable[[], Any]) -> None:
        self._actions.append((START_S + offset_s, action))


@dataclass
class FakeKernel:
    """Established sockets as a function of time since the agent's drain (None: no drain yet)."""

    clock: FakeClock
    start: int
    after_drain: Callable[[float], int] = lambda _elapsed_s: 0
    drained_at_s: float | None = None
    resets: list[tuple[float, int]] = field(default_factory=list)
    failing: bool = False
    port: int = 4000

    async def count(self) -> int:
        if self.failing:
            raise PermanentError("ss failed")
        if self.resets:
            return 0
        if self.drained_at_s is None:
            return self.start
        return min(self.start, self.after_drain(self.clock.now() - self.drained_at_s))

    async def reset(self) -> int:
        left = 0 if self.failing else await self.count()
        self.resets.append((self.clock.now(), left))
        return left


@dataclass
class FakeHook:
    clock: FakeClock
    kernel: FakeKernel
    timing_out: bool = False
    answers_after_s: float = 0.0
    """How long the hook keeps the agent waiting before it answers (or times out)."""
    calls: list[tuple[float, float]] = field(default_factory=list)

    async def drain(self, rate_per_s: float) -> dict[str, Any]:
        self.calls.append((self.clock.now() - START_S, rate_per_s))
        self.clock.now_s += self.answers_after_s
        self.clock.monotonic_s += self.answers_after_s
        if self.timing_out:
            raise AppTimeout("the app's drain hook did not answer")
        if self.kernel.drained_at_s is None:
            self.kernel.drained_at_s = self.clock.now()
        return {"accepted": True}

    async def aclose(self) -> None:
        return None


@dataclass
class Host:
    clock: FakeClock
    kernel: FakeKernel
    hook: FakeHook
    agent: NodeAgent

    def notice(self, not_after_in_s: float) -> Notice:
        notice, _ = self.agent.add_notice("n1", "terminate", START_S + not_after_in_s)
        return notice

    def run(self, notice: Notice, config: FallbackConfig = CONFIG) -> Outcome:
        return asyncio.run(run_fallback(notice, self.agent, config, self.clock))

    def reset_at(self) -> float:
        ((at_s, _),) = self.kernel.resets
        return at_s - START_S


def host(sockets: int, after_drain: Callable[[float], int] = lambda _s: 0, **hook: Any) -> Host:
    clock = FakeClock()
    kernel = FakeKernel(clock, sockets, after_drain)
    fake_hook = FakeHook(clock, kernel, **hook)
    agent = NodeAgent(
        sockets=kernel,
        hook=fake_hook,
        book=NoticeBook(LocalRelease(), clock),
        metrics=AgentMetrics(4000),
        fallback=CONFIG.model_copy(update={"enabled": False}),  # these tests run the fallback themselves
        clock=clock,
    )
    return Host(clock, kernel, fake_hook, agent)


def released_in_s(notice: Notice) -> float:
    assert notice.state == "released" and notice.released_at is not None
    return notice.released_at - START_S


def test_a_silent_controller_gets_a_graceful_agent_drain_after_the_grace() -> None:
    h = host(100, after_drain=lambda elapsed_s: max(0, 100 - int(elapsed_s * 50)))
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.DRAINED

    assert h.hook.calls == [(5.0, 200)]
    assert h.kernel.resets == [], "a drain that reached zero needs no reset"
    assert 7.0 <= released_in_s(notice) <= 7.5
    assert (notice.drain_started_by, notice.released_by, notice.reset) == ("agent", "agent", None)


def test_a_drain_the_app_ignores_is_reset_after_the_no_progress_window() -> None:
    h = host(50, after_drain=lambda _s: 50)
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    assert h.hook.calls == [(5.0, 200)]
    assert 8.0 <= h.reset_at() <= 8.25, "reset no-progress-window after the drain, not at the deadline (55 s)"
    assert notice.reset == 50
    assert h.reset_at() <= released_in_s(notice) < 60


def test_a_slow_but_moving_drain_is_only_forced_at_the_deadline() -> None:
    h = host(10_000, after_drain=lambda elapsed_s: 10_000 - int(elapsed_s * 2))
    notice = h.notice(not_after_in_s=30)

    assert h.run(notice) is Outcome.FORCED

    assert h.reset_at() == pytest.approx(25.0, abs=0.25), "not_after - reset_margin_s"
    assert released_in_s(notice) < 30


def test_a_timed_out_drain_still_ends_in_a_reset_and_a_release_before_not_after() -> None:
    h = host(20, after_drain=lambda _s: 20, timing_out=True)
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    assert h.hook.calls == [(5.0, 200)]
    assert notice.reset == 20 and 8.0 <= h.reset_at() <= 8.25
    assert released_in_s(notice) < 60


def test_a_broken_kernel_count_still_ends_in_a_release_before_not_after() -> None:
    h = host(20)
    h.kernel.failing = True
    notice = h.notice(not_after_in_s=20)

    h.run(notice)

    assert released_in_s(notice) < 20


def test_a_notice_too_close_to_its_deadline_for_the_grace_is_reset_by_the_deadline() -> None:
    h = host(30, after_drain=lambda _s: 30)
    notice = h.notice(not_after_in_s=7)

    assert h.run(notice) is Outcome.FORCED

    assert h.reset_at() == pytest.approx(2.0, abs=0.25)
    assert released_in_s(notice) < 7


def test_a_controller_drain_within_the_grace_keeps_the_agent_from_draining() -> None:
    h = host(40, after_drain=lambda _s: 40)
    notice = h.notice(not_after_in_s=60)
    h.clock.at(2.0, lambda: h.agent.drain(100, by="controller"))
    h.clock.at(20.0, lambda: h.agent.release(notice, by="controller"))

    assert h.run(notice) is Outcome.RELEASED

    assert h.hook.calls == [(2.0, 100)], "only the controller's drain reaches the app"
    assert h.kernel.resets == []
    assert (notice.drain_started_by, notice.released_by) == ("controller", "controller")


def test_a_controller_drain_nobody_releases_is_reset_and_released_at_the_deadline() -> None:
    h = host(40, after_drain=lambda _s: 40)
    notice = h.notice(not_after_in_s=60)
    h.clock.at(1.0, lambda: h.agent.drain(100, by="controller"))

    assert h.run(notice) is Outcome.CONTROLLER_DEADLINE

    assert h.hook.calls == [(1.0, 100)]
    assert h.reset_at() == pytest.approx(55.0, abs=0.25)
    assert notice.reset == 40 and released_in_s(notice) < 60


def test_a_controller_drain_just_before_the_notice_counts() -> None:
    h = host(10)
    asyncio.run(h.agent.drain(100, by="controller"))
    h.clock.now_s += 2.0
    h.clock.monotonic_s += 2.0
    notice = h.notice(not_after_in_s=60)
    notice_seen_s = 2.0
    h.clock.at(notice_seen_s + 10.0, lambda: h.agent.release(notice, by="controller"))

    assert h.run(notice) is Outcome.RELEASED

    assert h.hook.calls == [(0.0, 100)]
    assert notice.drain_started_by == "controller"


DRAIN_CALL_S = 2.0
"""How long a stopped app keeps the drain call waiting before it times out."""


def test_a_drain_hook_that_times_out_buys_no_extra_no_progress_window() -> None:
    h = host(20, after_drain=lambda _s: 20, timing_out=True, answers_after_s=DRAIN_CALL_S)
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    [(requested_s, _)] = h.hook.calls
    assert h.reset_at() == pytest.approx(requested_s + CONFIG.no_progress_window_s), (
        "the window runs from the drain request, not from when the hook gave up"
    )
    assert notice.reset == 20


def test_the_fallback_and_the_controller_reset_the_same_stuck_drain_at_the_same_time(tmp_path: Path) -> None:
    assert CONFIG.no_progress_window_s == BUDGET.no_progress_window_s, "the same window on both sides"
    h = host(100, after_drain=lambda _s: 100, timing_out=True, answers_after_s=DRAIN_CALL_S)
    assert h.run(h.notice(not_after_in_s=60)) is Outcome.FORCED
    [(agent_requested_s, _)] = h.hook.calls

    controller_reset_after_s = asyncio.run(_controller_reset_after_request_s(tmp_path / "journal.db"))

    assert h.reset_at() - agent_requested_s == pytest.approx(CONFIG.no_progress_window_s)
    assert controller_reset_after_s == pytest.approx(BUDGET.no_progress_window_s)


async def _controller_reset_after_request_s(journal: Path) -> float:
    """The engine drains a stopped server whose drain call times out after DRAIN_CALL_S: request to reset."""
    clock = EngineClock()
    server = FakeHost(clock, sockets=100, behaviour="stopped", app_timeout_s=DRAIN_CALL_S)
    world = make_world(journal, hosts={"A": server}, clock=clock)
    world.engine.submit(world.notice("A", in_s=60))
    await world.settle()
    [(requested_at, _)] = server.drains
    [(reset_at, left)] = server.resets
    assert left == 100
    return reset_at - requested_at
