"""The local fallback's windows and grace are durations (issue 9, cases 7 and 8), on the fallback's fake clock
(tests/controller/agent/test_fallback_timing.py), whose wall clock can step while the monotonic one runs on."""

from __future__ import annotations

import asyncio

from controller.agent.fallback import Outcome
from controller.agent.holding import hold
from tests.controller.agent.test_fallback_timing import CONFIG, host, released_in_s


def test_a_wall_clock_step_back_does_not_stretch_the_grace() -> None:
    """issue 9, case 8: the grace before the agent drains is 5 s of elapsed time: a wall-clock step back of 10 s
    one second in must not delay the agent's drain by 10 s (it drained at 15 s instead of 5 s)."""
    h = host(100, after_drain=lambda elapsed_s: max(0, 100 - int(elapsed_s * 50)))
    h.clock.at(1.0, lambda: h.clock.step(-10.0))
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.DRAINED

    assert h.hook.calls == [(-5.0, 200)], "drained 5 s after the notice: wall time -5 s after the step"


def test_a_wall_clock_step_forward_does_not_cut_the_grace_short() -> None:
    """issue 9, case 8: a step forward of 10 s during the grace must not make the agent drain at once, in the
    controller's way (the grace is the controller's time to start its own drain)."""
    h = host(100, after_drain=lambda elapsed_s: max(0, 100 - int(elapsed_s * 50)))
    h.clock.at(1.0, lambda: h.clock.step(10.0))
    notice = h.notice(not_after_in_s=60)

    h.run(notice)

    assert h.hook.calls == [(15.0, 200)], "drained 5 s after the notice: wall time 15 s after the step"


def test_a_wall_clock_step_back_does_not_delay_the_reset_of_a_stuck_drain() -> None:
    """issue 9, case 8: a drain the app ignores is reset 3 s (the no-progress window) after the agent's drain
    request; a wall-clock step back of 10 s inside the window delayed the reset by 10 s."""
    h = host(50, after_drain=lambda _s: 50)
    h.clock.at(6.0, lambda: h.clock.step(-10.0))
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    assert -2.0 <= h.reset_at() <= -1.75, "8 s after the notice (true time): wall time -2 s after the step"
    assert notice.reset == 50 and released_in_s(notice) < 50


def test_a_fallback_drain_slower_than_one_socket_per_window_is_not_forced_while_it_moves() -> None:
    """issue 9, case 7 (the rule is shared): a fallback rate of 0.2 sockets/s against a 3 s window looked stuck
    and was reset at once; the window stretches with the rate, so the agent drains to zero and releases."""
    config = CONFIG.model_copy(update={"drain_rate_per_s": 0.2})
    h = host(3, after_drain=lambda elapsed_s: max(0, 3 - int(elapsed_s * 0.2)))
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice, config) is Outcome.DRAINED

    assert h.kernel.resets == []
    assert 20.0 <= released_in_s(notice) < 21.0


def test_a_wall_clock_step_back_does_not_stretch_the_shutdown_holds_window() -> None:
    """issue 9, case 8: the shutdown hold's window (60 s) is a duration: a wall-clock step back of 100 s must not
    hold the host's shutdown for 160 s."""
    h = host(10)
    h.clock.at(1.0, lambda: h.clock.step(-100.0))
    started = h.clock.monotonic()

    result = asyncio.run(hold(h.agent, window_s=60.0, clock=h.clock))

    assert result.outcome == "timed_out"
    assert 60.0 <= h.clock.monotonic() - started < 61.0 and 60.0 <= result.held_s < 61.0
