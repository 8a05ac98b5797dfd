"""The agent's operations on its host, shared by the HTTP API (the controller's calls) and the local fallback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from controller.agent.apphook import AppHookError, AppRejected, AppTimeout, AppUnreachable
from controller.agent.config import FallbackConfig
from controller.agent.fallback import run_fallback
from controller.agent.metrics import AgentMetrics
from controller.agent.notices import Actor, Notice, NoticeBook, NoticeState
from controller.agent.notifying import FallbackNotices
from controller.core.clocks import SleepingClock as Clock
from controller.protocol.pushes import PushAnswer

log = logging.getLogger("drainctl.agent.node")

_DRAIN_OUTCOMES: dict[type[AppHookError], str] = {
    AppUnreachable: "unreachable",
    AppTimeout: "timeout",
    AppRejected: "rejected",
}


class Sockets(Protocol):
    port: int

    async def count(self) -> int: ...

    async def reset(self) -> int: ...


class DrainHook(Protocol):
    async def drain(self, rate_per_s: float) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class NoticePusher(Protocol):
    """Tells the controller about a new notice at once (`pushing.Pusher`)."""

    agent_url: str

    async def push(self, notice: Notice) -> PushAnswer | None: ...

    async def aclose(self) -> None: ...


class NodeAgent:
    """Drain, count, reset and notices for one host; starts a fallback (and a push) for each new notice."""

    def __init__(
        self,
        *,
        sockets: Sockets,
        hook: DrainHook,
        book: NoticeBook,
        metrics: AgentMetrics,
        fallback: FallbackConfig,
        clock: Clock,
        pusher: NoticePusher | None = None,
        notices: FallbackNotices | None = None,
    ) -> None:
        """`pusher`: pushes each new notice to the controllers; None: they find it by polling."""
        self.pusher = pusher
        self.sockets = sockets
        self.book = book
        self.metrics = metrics
        self._hook = hook
        self._fallback = fallback
        self._clock = clock
        self._controller_drain_at_s: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._notices = notices
        """The fallback's webhooks (none configured: None)."""

    async def drain(self, rate_per_s: float, *, by: Actor) -> dict[str, Any]:
        """Ask the app to drain; the app's answer. A controller drain calls off the fallbacks' wait first."""
        if by == "controller":
            self._controller_acting()
        else:
            self._acting()
        log.info("drain requested by %s at %g/s", by, rate_per_s)
        try:
            answer = await self._hook.drain(rate_per_s)
        except AppHookError as exc:
            self.metrics.drains.labels(by=by, outcome=_DRAIN_OUTCOMES[type(exc)]).inc()
            log.warning("drain requested by %s failed: %s", by, exc)
            raise
        self.metrics.drains.labels(by=by, outcome="accepted").inc()
        return answer

    def _controller_acting(self) -> None:
        """The controller drains this host now: the fallbacks' wait is called off (each notice guards the
        controller's drain instead, to its deadline)."""
        self._controller_drain_at_s = self._clock.now()
        for notice in self.book.unreleased():
            notice.start_drain("controller", at=self._controller_drain_at_s)
        self.book.save()

    async def not_ready(self) -> bool | None:
        """The drain's first step: ask the app to turn not ready; whether it is still ready (None: no hook).
        Only the controller calls it (its route needs the agent token), as the first step of its drain: from
        here the controller is draining, so the fallback does not start its own drain while the controller waits
        for the load balancer (that wait may be longer than the fallback's grace)."""
        self._controller_acting()
        leave = getattr(self._hook, "not_ready", None)
        if leave is None:
            return None
        still_ready: bool | None = await leave()
        log.info("out of rotation requested: the app %s", _rotation_words(still_ready))
        return still_ready

    async def connections(self) -> int:
        count = await self.sockets.count()
        self.metrics.established.set(count)
        return count

    async def reset(self, *, by: Actor) -> int:
        if by == "agent":
            self._acting()
        reset = await self.sockets.reset()
        self.metrics.resets.labels(by=by).inc()
        self.metrics.sockets_reset.labels(by=by).inc(reset)
        log.info("reset requested by %s: %d sockets on port %d aborted", by, reset, self.sockets.port)
        return reset

    def add_notice(
        self, notice_id: str, kind: str, not_after: float, *, source: str = "api", grace_s: float | None = None,
        push: bool = True,
    ) -> tuple[Notice, bool]:
        """Record a notice (idempotent by id) and, when new, start its fallback. A controller drain requested at
        most `fallback.grace_s` before counts as the notice's drain, written with the notice's first save (a
        crash right after it must not leave the notice open to the fallback)."""
        drained_at_s = self._controller_drain_at_s
        if drained_at_s is not None and drained_at_s < self._clock.now() - self._fallback.grace_s:
            drained_at_s = None
        notice, new = self.book.add(notice_id, kind, not_after, source=source, grace_s=grace_s,
                                    controller_drain_at=drained_at_s)
        if not new:
            return notice, False
        self.metrics.notices.labels(kind=kind).inc()
        log.info("notice %s (%s, from %s) seen, not_after in %.1f s", notice.id, kind, source,
                 not_after - notice.seen_at)
        if push:  # not one the controller posted itself (`routes._add_notice`)
            self._push(notice)
        if self._fallback.enabled:
            self._spawn(self._run_fallback(notice))
        return notice, True

    def restore(self) -> list[Notice]:
        """Load the notices of the previous run; the open ones get their fallback again (deadlines unchanged)."""
        reopened = self.book.restore()
        for notice in reopened:
            log.info("notice %s (%s) restored, not_after in %.1f s", notice.id, notice.kind,
                     notice.not_after - self._clock.now())
            self._push(notice)
            if self._fallback.enabled:
                self._spawn(self._run_fallback(notice))
        return reopened

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a loop of the agent's (a platform watcher) until `aclose`."""
        self._spawn(work)

    async def release(self, notice: Notice, *, by: Actor) -> bool:
        if by == "agent" and self._notices is not None and notice.state is not NoticeState.RELEASED:
            now = self._clock.now()
            wait_s = min(self._fallback.webhook_wait_s, notice.not_after - self._fallback.reset_margin_s - now)
            await self._notices.releasing(notice, at=now, wait_s=wait_s)
        released = await self.book.release(notice, by=by)
        if released:
            self.metrics.releases.labels(by=by).inc()
            log.info("notice %s released by %s", notice.id, by)
        return released

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._hook.aclose()
        if self._notices is not None:
            await self._notices.aclose()
        if self.pusher is not None:
            await self.pusher.aclose()

    def _push(self, notice: Notice) -> None:
        pusher = self.pusher
        if pusher is None:
            return

        async def push() -> None:
            answer = await pusher.push(notice)
            if answer is not None and answer.start_by is not None:
                notice.controller_start_by = answer.start_by
                log.info("notice %s: the controller holds it; its drain starts %.1f s from now at the latest",
                         notice.id, answer.start_by - self._clock.now())

        self._spawn(push())

    async def _run_fallback(self, notice: Notice) -> None:
        try:
            outcome = await run_fallback(notice, self, self._fallback, self._clock)
        except Exception:
            log.exception("notice %s: fallback crashed", notice.id)
            raise
        self.metrics.fallback_runs.labels(outcome=outcome.value).inc()
        log.info("notice %s: fallback done (%s)", notice.id, outcome.value)

    def _acting(self) -> None:
        """The fallback acts on the host: tell the webhooks, for every notice it acts on."""
        if self._notices is not None:
            self._notices.acting(self.book.unreleased(), at=self._clock.now())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _rotation_words(still_ready: bool | None) -> str:
    if still_ready is None:
        return "has no not-ready hook"
    return "ignored it (still ready)" if still_ready else "answers /readyz with 503 and keeps its sockets"
