"""The local fallback: when a notice arrives and the controller stays silent, drain, reset and release alone.

Timeline of one notice (deadline = not_after - reset_margin_s):

    seen ──grace_s──> no controller drain?  drain via the app hook at the fallback rate
                      (a controller that answered the push with `start_by`: not before start_by + grace_s)
                      watch the kernel count: zero -> release (drained)
                                              no progress for no_progress_window_s, or deadline -> reset, release
    seen ──> controller drain started: stay out of its way; at the deadline, if nobody released: reset, release

"No progress" is the controller's rule (`controller/core/stall.py`): the window runs from the drain request, not
from when the app's drain hook answered (a hook that times out buys no extra time), and the first count is the
baseline. A count that is unknown (the kernel count failed) is never "no progress": it waits for the deadline.
So the agent and the controller reset the same stuck drain at the same moment.

It never holds a notice past its deadline (a failed drain, count or reset is logged and the release still
happens at the deadline) and never releases before the count reached zero or the leftovers were reset: a failed
reset is tried again, counting in between, until the deadline. Every call to the host is cut short by the
deadline on the fallback's own clock (`_by`): a hung `ss` (killed only after 30 s) or a hanging platform must
not hold the release past `not_after`. The drain and the counts while draining end at the deadline; a reset
and the counts around it may run until `reset_margin_s / 2` before `not_after`, which leaves the other half for
the release.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from controller.agent.config import FallbackConfig
from controller.agent.notices import Actor, Notice, NoticeState
from controller.core.clocks import SleepingClock as Clock
from controller.core.errors import DrainctlError, TemporaryError
from controller.core.stall import Progress

log = logging.getLogger("drainctl.agent.fallback")

T = TypeVar("T")

_LOOK_S = 0.25
"""While a call to the host is in flight, how often the fallback reads its deadline again."""


class TooLate(TemporaryError):
    """A call to the host did not answer by the time the fallback had for it (the deadline came first)."""


class Hands(Protocol):
    """What the fallback needs from the agent (the agent's `NodeAgent` provides it)."""

    async def drain(self, rate_per_s: float, *, by: Actor) -> dict[str, Any]: ...

    async def connections(self) -> int: ...

    async def reset(self, *, by: Actor) -> int: ...

    async def release(self, notice: Notice, *, by: Actor) -> bool: ...


class Outcome(enum.StrEnum):
    DRAINED = "drained"
    """The agent drained, the count reached zero, the agent released."""
    FORCED = "forced"
    """The agent drained, then reset the leftovers (no progress or deadline) and released."""
    CONTROLLER_DEADLINE = "controller"
    """The controller drained but nobody released by the deadline: the agent reset and released."""
    RELEASED = "released"
    """Someone else (the controller) released the notice first."""


async def run_fallback(notice: Notice, hands: Hands, config: FallbackConfig, clock: Clock) -> Outcome:
    def deadline_s() -> float:  # read each time: the platform may shorten the notice (`NoticeBook.add`)
        return notice.not_after - config.reset_margin_s

    grace_s = config.grace_s if notice.grace_s is None else notice.grace_s
    grace_left_s = max(0.0, notice.seen_at + grace_s - clock.now())  # seen_at: the one time a restart keeps
    await _wait(clock, config.poll_s, deadline_s, lambda: notice.state is not NoticeState.OPEN, for_s=grace_left_s)
    if notice.state is NoticeState.OPEN and notice.controller_start_by is not None:
        await _wait_for_controller(notice, config, clock, grace_s, deadline_s)
    if notice.state is NoticeState.RELEASED:
        return Outcome.RELEASED
    if notice.drain_started_by == "controller":
        return await _guard_controller_drain(notice, hands, config, clock, deadline_s)
    requested_at = clock.monotonic()
    notice.start_drain("agent", at=clock.now())
    if clock.now() < deadline_s():
        await _drain(notice, hands, config, clock, grace_s, deadline_s)
    progress = Progress(window_s=config.no_progress_window_s, since=requested_at, rate_per_s=config.drain_rate_per_s)
    return await _watch(notice, hands, config, clock, deadline_s, progress)


async def _wait_for_controller(
    notice: Notice, config: FallbackConfig, clock: Clock, grace_s: float, deadline_s: Deadline
) -> None:
    """The controller answered the push: it holds the notice and its plan requests the drain by
    `controller_start_by` (it may be holding it back for the disruption budget, which a drain of the agent's own
    would break). Wait for it until then plus the grace, never past the fallback's deadline: a controller that
    dies after its answer costs the graceful drain time, not the reset before `not_after`."""
    def until_s() -> float:
        promised = notice.controller_start_by
        return deadline_s() if promised is None else min(deadline_s(), promised + grace_s)

    if clock.now() < until_s():
        log.info("notice %s: the controller holds it; no drain of the agent's own before %.1f s from now",
                 notice.id, until_s() - clock.now())
    await _wait(clock, config.poll_s, until_s, lambda: notice.state is not NoticeState.OPEN)


async def _by(clock: Clock, until_s: Deadline, call: Awaitable[T], what: str) -> T:
    """`call`'s answer, unless the wall-clock instant `until_s()` comes first (read again every `_LOOK_S`: the
    platform may shorten the notice meanwhile): then `call` is cancelled and this raises `TooLate`. Measured on
    the fallback's clock, so it holds on a simulated one too; a call that answers at once gets no timer."""
    answer = asyncio.ensure_future(call)
    await asyncio.sleep(0)  # the call's first step runs now
    try:
        while not answer.done() and (left_s := until_s() - clock.now()) > 0:
            timer = asyncio.ensure_future(clock.sleep(min(_LOOK_S, left_s)))
            try:
                await asyncio.wait((answer, timer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
    finally:
        answer.cancel()  # nothing when it is done; else the caller gave up (or was cancelled itself)
    if not answer.done() or answer.cancelled():
        await asyncio.gather(answer, return_exceptions=True)
        raise TooLate(f"{what} did not answer before the fallback's deadline")
    return answer.result()


def _reset_by(notice: Notice, config: FallbackConfig) -> float:
    """How long a reset may run: until half the margin before `not_after` (the other half is the release's)."""
    return notice.not_after - config.reset_margin_s / 2


Deadline = Callable[[], float]
"""The fallback's deadline (wall clock, `not_after - reset_margin_s`), read each time it is needed."""


async def _guard_controller_drain(
    notice: Notice, hands: Hands, config: FallbackConfig, clock: Clock, deadline_s: Deadline
) -> Outcome:
    await _wait(clock, config.poll_s, deadline_s, lambda: notice.state is NoticeState.RELEASED)
    if notice.state is NoticeState.RELEASED:
        return Outcome.RELEASED
    log.warning("notice %s: controller drain not released %.1f s before not_after; resetting", notice.id,
                config.reset_margin_s)
    await _force(notice, hands, config, clock, deadline_s)
    return Outcome.CONTROLLER_DEADLINE


async def _watch(
    notice: Notice, hands: Hands, config: FallbackConfig, clock: Clock, deadline_s: Deadline, progress: Progress
) -> Outcome:
    """Follow the kernel count until zero (release) or no progress/deadline (reset, release)."""
    while notice.state is not NoticeState.RELEASED:
        past = clock.now() >= deadline_s()  # the last look, before the reset, may take as long as a reset
        count = await _count(hands, clock, (lambda: _reset_by(notice, config)) if past else deadline_s)
        now_s, monotonic = clock.now(), clock.monotonic()
        progress.see(count, monotonic)
        if count == 0:
            await _release(notice, hands, clock)
            return Outcome.DRAINED
        if now_s >= deadline_s() or progress.stalled(monotonic):
            log.info("notice %s: %s sockets left (%s); resetting", notice.id, count,
                     "deadline" if now_s >= deadline_s() else "no progress")
            await _force(notice, hands, config, clock, deadline_s)
            return Outcome.FORCED
        await clock.sleep(_next_look_s(config.poll_s, deadline_s() - now_s, progress.stalls_at(), monotonic))
    return Outcome.RELEASED


def _next_look_s(poll_s: float, deadline_in_s: float, stalls_at: float | None, monotonic: float) -> float:
    """Poll, but look again exactly when the deadline (wall) or the end of the no-progress window (monotonic)
    comes."""
    left_s = deadline_in_s if stalls_at is None else min(deadline_in_s, stalls_at - monotonic)
    return max(0.0, min(poll_s, left_s))


async def _wait(
    clock: Clock, poll_s: float, until_s: Deadline, done: Callable[[], bool], *, for_s: float | None = None
) -> None:
    """Until `done()`, the wall-clock instant `until_s()` (a deadline), or `for_s` seconds on the monotonic clock
    (a grace: a wall-clock step neither shortens nor stretches it)."""
    ends_at = None if for_s is None else clock.monotonic() + for_s
    while not done():
        left_s = until_s() - clock.now()
        if ends_at is not None:
            left_s = min(left_s, ends_at - clock.monotonic())
        if left_s <= 0:
            return
        await clock.sleep(min(poll_s, left_s))


async def _drain(
    notice: Notice, hands: Hands, config: FallbackConfig, clock: Clock, grace_s: float, deadline_s: Deadline
) -> None:
    log.info("notice %s: no controller drain within %.1f s; draining at %g/s", notice.id, grace_s,
             config.drain_rate_per_s)
    try:
        await _by(clock, deadline_s, hands.drain(config.drain_rate_per_s, by="agent"), "the app's drain hook")
    except DrainctlError as exc:
        log.warning("notice %s: drain failed (%s); leftovers will be reset", notice.id, exc)


async def _count(hands: Hands, clock: Clock, until_s: Deadline) -> int | None:
    """The kernel count, None when it failed or did not answer by `until_s()`."""
    try:
        return await _by(clock, until_s, hands.connections(), "the kernel socket count")
    except DrainctlError as exc:
        log.warning("kernel socket count failed: %s", exc)
        return None


async def _force(notice: Notice, hands: Hands, config: FallbackConfig, clock: Clock, deadline_s: Deadline) -> None:
    """Reset, count again, then release. The release comes after a zero count, or at the deadline, never right
    after a failed reset (issue 9, case 5: an early release with sockets open), nor after a reset the kernel
    count shows sockets left by (sockets the kernel could not destroy: reset again, counting in between)."""
    leftovers_told = False

    def until_s() -> float:
        return _reset_by(notice, config)

    while notice.state is not NoticeState.RELEASED:
        try:
            notice.reset = (notice.reset or 0) + await _by(clock, until_s, hands.reset(by="agent"), "the reset")
        except DrainctlError as exc:
            if clock.now() >= deadline_s():
                log.error("notice %s: reset failed until the deadline (%s); releasing before not_after", notice.id,
                          exc)
                break
            log.warning("notice %s: reset failed (%s); trying again until the deadline", notice.id, exc)
        else:
            left = await _count(hands, clock, until_s)
            if left == 0:
                break
            if clock.now() >= deadline_s():
                log.error("notice %s: %s sockets left after the reset at the deadline; releasing before not_after",
                          notice.id, "unknown" if left is None else left)
                break
            if not leftovers_told:
                leftovers_told = True
                log.warning("notice %s: %s sockets left after the reset; resetting again until the deadline",
                            notice.id, "unknown" if left is None else left)
        await clock.sleep(max(0.0, min(config.poll_s, deadline_s() - clock.now())))
        if await _count(hands, clock, until_s) == 0:
            break
    await _release(notice, hands, clock)


async def _release(notice: Notice, hands: Hands, clock: Clock) -> None:
    """Release, retrying a failing platform until `not_after` (past it, the platform has moved on)."""
    while True:
        try:
            await _by(clock, lambda: notice.not_after, hands.release(notice, by="agent"), "the release")
            return
        except DrainctlError as exc:
            if clock.now() >= notice.not_after:
                log.error("notice %s: release failed until not_after: %s", notice.id, exc)
                return
            log.warning("notice %s: release failed, retrying: %s", notice.id, exc)
            await clock.sleep(min(1.0, notice.not_after - clock.now()))
