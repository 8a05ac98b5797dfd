"""The local fallback under faults, on the fallback's fake clock (tests/controller/agent/test_fallback_timing.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.agent.fallback import Outcome
from controller.core.errors import TemporaryError
from tests.controller.agent.test_fallback_timing import START_S, FakeKernel, host, released_in_s


@dataclass
class FlakyReset:
    """The kernel behind `ss -K` that fails the first `failures` resets (`ss` timed out), then works."""

    kernel: FakeKernel
    failures: int
    attempts: list[float] = field(default_factory=list)
    port: int = 4000

    async def count(self) -> int:
        return await self.kernel.count()

    async def reset(self) -> int:
        self.attempts.append(self.kernel.clock.now() - START_S)
        if len(self.attempts) <= self.failures:
            raise TemporaryError("ss -K did not answer in 2 s")
        return await self.kernel.reset()


def test_a_failed_reset_is_retried_and_the_notice_released_only_after_the_reset() -> None:
    """issue 9, case 5: after a failed reset the fallback must not release at once (sockets still open): it tries
    the reset again until it completes, and releases after it, before not_after."""
    h = host(50, after_drain=lambda _s: 50)
    flaky = FlakyReset(h.kernel, failures=3)
    h.agent.sockets = flaky
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    assert len(flaky.attempts) == 4 and notice.reset == 50
    ((reset_at_s, left),) = h.kernel.resets
    assert left == 50
    assert reset_at_s - START_S <= released_in_s(notice) < 60
    assert released_in_s(notice) < 55, "released once the reset completed, not held to the deadline"


def test_a_reset_that_never_works_is_retried_until_the_deadline_then_released() -> None:
    """issue 9, case 5: a reset that keeps failing is tried again until the deadline (not_after - reset_margin_s),
    and the notice is released at the deadline, not at the no-progress window."""
    h = host(50, after_drain=lambda _s: 50)
    flaky = FlakyReset(h.kernel, failures=10_000)
    h.agent.sockets = flaky
    notice = h.notice(not_after_in_s=60)

    h.run(notice)

    assert len(flaky.attempts) > 2
    assert 55.0 <= released_in_s(notice) < 60, "released at the deadline, not right after the first failed reset"
    assert flaky.attempts[-1] >= 55.0


def test_sockets_that_go_while_the_reset_fails_are_released_at_the_zero_count() -> None:
    """issue 9, case 5: while the reset fails, the fallback counts again; a zero count is a release."""
    h = host(50, after_drain=lambda elapsed_s: 50 if elapsed_s < 10 else 0)
    flaky = FlakyReset(h.kernel, failures=10_000)
    h.agent.sockets = flaky
    notice = h.notice(not_after_in_s=60)

    h.run(notice)

    assert 15.0 <= released_in_s(notice) < 16.0, "released at the first zero count after the drain emptied"
