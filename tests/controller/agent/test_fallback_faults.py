"""The local fallback under faults, on the fallback's fake clock (tests/controller/agent/test_fallback_timing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller.agent.fallback import Outcome
from controller.agent.keeping import NoticeFile
from controller.agent.notices import LocalRelease, Notice, NoticeBook
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


@dataclass
class StuckSockets:
    """The kernel behind `ss -K` where `stuck` sockets cannot be destroyed: a reset skips them and reports
    success (a socket owned by a namespace or a filter the reset does not reach)."""

    kernel: FakeKernel
    stuck: int
    resets: list[float] = field(default_factory=list)
    port: int = 4000

    async def count(self) -> int:
        return self.stuck if self.resets else await self.kernel.count()

    async def reset(self) -> int:
        self.resets.append(self.kernel.clock.now() - START_S)
        if len(self.resets) > 1:
            return 0
        return await self.kernel.count() - self.stuck


def test_sockets_a_reset_cannot_destroy_are_reset_again_and_held_to_the_deadline() -> None:
    """Found by the fallback simulation (seed 2, tests/simulation/fallback_*.py; issue 9, case 9 on the agent's
    side): after a reset that left sockets open, the fallback released at once. It counts again after a reset,
    resets again while sockets are left, and releases at the deadline, not 8 s in with 2 sockets open."""
    h = host(50, after_drain=lambda _s: 50)
    stuck = StuckSockets(h.kernel, stuck=2)
    h.agent.sockets = stuck
    notice = h.notice(not_after_in_s=60)

    assert h.run(notice) is Outcome.FORCED

    assert 8.0 <= stuck.resets[0] <= 8.25 and len(stuck.resets) > 2
    assert notice.reset == 48, "the sockets reset, summed over the tries"
    assert 55.0 <= released_in_s(notice) < 60, "held to the deadline while sockets were left, never past not_after"


def test_a_shortened_deadline_brings_the_reset_and_release_forward() -> None:
    """Found by the fallback simulation (seeds 35, 37, 46): a notice announced again with an earlier not_after
    (the platform shortened it) kept its first deadline in the book and in the running fallback, so a slow drain
    was reset and released 25 s after the platform's new deadline."""
    h = host(10_000, after_drain=lambda elapsed_s: 10_000 - int(elapsed_s * 2))
    notice = h.notice(not_after_in_s=60)
    h.clock.at(10.0, lambda: h.agent.add_notice("n1", "terminate", START_S + 30))

    assert h.run(notice) is Outcome.FORCED

    assert notice.not_after == START_S + 30
    assert h.reset_at() == pytest.approx(25.0, abs=0.25), "the new not_after - reset_margin_s"
    assert released_in_s(notice) < 30


@dataclass
class KilledAfterFirstNotice:
    """The state file of an agent killed right after it first wrote a notice: later writes never happen."""

    file: NoticeFile
    killed: bool = False

    def load(self) -> list[Notice]:
        return self.file.load()

    def save(self, notices: Iterable[Notice]) -> None:
        notices = list(notices)
        if not self.killed:
            self.file.save(notices)
            self.killed = bool(notices)


def test_a_notice_after_a_controller_drain_is_stored_drained_by_the_controller_from_its_first_write(
    tmp_path: Path,
) -> None:
    """Found by the fallback simulation (seeds 655, 1077, 1839): a controller drain 1 s before a notice counts as
    the notice's drain, but the notice was written to the state file once before that was noted; an agent
    killed between the two writes read it back as open after its restart and drained in the controller's way.
    The first write holds the controller's drain, so the restarted agent stays out of its way."""
    h = host(10)
    h.agent.book = NoticeBook(LocalRelease(), h.clock, KilledAfterFirstNotice(NoticeFile(tmp_path / "notices.json")))
    asyncio.run(h.agent.drain(200, by="controller"))
    h.clock.step(1.0)

    h.notice(not_after_in_s=60)

    (stored,) = NoticeFile(tmp_path / "notices.json").load()
    assert stored.drain_started_by == "controller" and stored.drain_started_at == START_S
    restarted = host(10)
    restarted.agent.book = NoticeBook(LocalRelease(), restarted.clock, NoticeFile(tmp_path / "notices.json"))
    (notice,) = restarted.agent.book.restore()
    restarted.clock.at(54.0, lambda: restarted.agent.release(notice, by="controller"))
    assert restarted.run(notice) is Outcome.RELEASED
    assert restarted.hook.calls == [] and restarted.kernel.resets == [], "the fallback stayed out of the way"
