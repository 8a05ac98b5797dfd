"""The out-of-rotation step on its own: when it waits, for how long, and when it does not wait at all."""

from __future__ import annotations

import asyncio

from controller.core.budget import Budget
from controller.core.errors import TemporaryError
from controller.engine.rotating import Rotation
from tests.controller.engine.fakes import FakeClock, FakeHost

BUDGET = Budget(lb_check_interval_s=2.0, lb_unhealthy_threshold=3, lb_check_timeout_s=1.0)  # 7 s


class LeavingHost(FakeHost):
    """A host whose app answers the not-ready call with `still_ready`, or fails it."""

    def __init__(self, still_ready: bool | None, *, fails: bool = False) -> None:
        super().__init__(FakeClock())
        self.still_ready, self.fails, self.asked = still_ready, fails, 0

    async def not_ready(self) -> bool | None:
        self.asked += 1
        if self.fails:
            raise TemporaryError("agent unreachable")
        return self.still_ready


class Haproxy:
    """A balancer that stops routing to the host `after` looks (None: it never knows the host)."""

    name = "haproxy backend servers"

    def __init__(self, after: int | None) -> None:
        self.after, self.looks = after, 0

    async def routing(self, instance: str) -> bool | None:
        self.looks += 1
        return None if self.after is None else self.looks <= self.after


def _rotation(clock: FakeClock, *balancers: Haproxy) -> Rotation:
    async def sleep(seconds: float) -> None:
        clock.set(clock.now() + seconds)
        await asyncio.sleep(0)

    return Rotation(budget=BUDGET, clock=clock, balancers=balancers, poll_s=0.5, sleep=sleep)


def test_without_an_observable_balancer_the_step_waits_the_budgets_deregistration_time() -> None:
    clock, host = FakeClock(), LeavingHost(still_ready=False)
    rotated = asyncio.run(_rotation(clock).take_out("A", host))
    assert (rotated.how, rotated.waited_s, host.asked) == ("timer", 7.0, 1)
    assert "lb_deregistration_s (7 s)" in rotated.detail


def test_an_observed_balancer_ends_the_step_as_soon_as_it_stops_routing() -> None:
    clock, host, lb = FakeClock(), LeavingHost(still_ready=False), Haproxy(after=3)
    rotated = asyncio.run(_rotation(clock, lb).take_out("A", host))
    assert (rotated.how, rotated.waited_s) == ("observed", 1.5)
    assert rotated.detail.startswith("haproxy backend servers stopped routing")


def test_a_balancer_that_already_took_the_host_out_ends_the_step_at_once() -> None:
    clock, lb = FakeClock(), Haproxy(after=0)
    rotated = asyncio.run(_rotation(clock, lb).take_out("A", LeavingHost(still_ready=False)))
    assert (rotated.how, rotated.waited_s) == ("observed", 0.0)


def test_a_balancer_that_does_not_know_the_host_falls_back_to_the_timer() -> None:
    rotated = asyncio.run(_rotation(FakeClock(), Haproxy(after=None)).take_out("A", LeavingHost(False)))
    assert (rotated.how, rotated.waited_s) == ("timer", 7.0)


def test_an_app_that_stays_ready_or_cannot_be_asked_is_not_waited_for() -> None:
    for host, why in [
        (LeavingHost(still_ready=True), "stayed ready"),
        (LeavingHost(still_ready=None), "no not-ready hook"),
        (LeavingHost(still_ready=False, fails=True), "not-ready call failed (agent unreachable)"),
        (FakeHost(FakeClock()), "cannot leave rotation"),
    ]:
        rotated = asyncio.run(_rotation(FakeClock()).take_out("A", host))
        assert (rotated.how, rotated.waited_s) == ("skipped", 0.0)
        assert why in rotated.detail
