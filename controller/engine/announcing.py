"""Telling listeners what the engine did, without letting any of them slow it down (DESIGN.md §8).

The reconciler decides, writes the journal, and only then announces (`core/announcements.py`). Announcing
never awaits, so no listener runs inside a decide-and-write step and none can hold up a drain:

- a `Listener` (in-process bookkeeping: the metrics) hears each announcement synchronously, at once, so it is
  current when the pass returns (what the API's `/metrics` and the engine's tests rely on);
- an `AsyncListener` (I/O: webhooks, Kubernetes events) gets its own bounded mailbox and delivery task, the
  way kopf's posting enqueues synchronously and a poster delivers asynchronously. One that hangs falls behind
  alone; past `MAILBOX_SIZE` its announcements are dropped, and that is logged.

A listener that raises is logged once per kind of error and otherwise ignored. Announcements are best effort:
a controller that stops (or crashes) loses what its mailboxes held. Delivery that must not be lost (webhooks)
reads the journal's transition sequence as an outbox instead (`Journal.transitions(after_seq=...)`): every
line has a `seq`, so a deliverer remembers the last one it delivered and resumes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TypeGuard

from controller.core.announcements import Announcement
from controller.core.ports import AsyncListener, Listener

log = logging.getLogger("drainctl.engine.listeners")

MAILBOX_SIZE = 10_000
"""Announcements an async listener may fall behind by before new ones are dropped for it."""

CLOSE_TIMEOUT_S = 1.0
"""How long `aclose` waits for cancelled delivery tasks (a listener may swallow a cancellation)."""


class Complaints:
    """Logs a listener's failure the first time it fails that way, and only at debug level after that."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, str]] = set()

    def __call__(self, listener: object, exc: BaseException) -> None:
        key = (id(listener), type(exc).__name__)
        if key in self._seen:
            log.debug("listener %s failed again: %r", _name(listener), exc)
            return
        self._seen.add(key)
        log.error("listener %s failed (%s); ignored, and not logged again for this error: %s",
                  _name(listener), type(exc).__name__, exc, exc_info=exc)


class Mailbox:
    """One async listener's queue and delivery task: announcements in order, one at a time."""

    def __init__(self, listener: AsyncListener, complain: Complaints) -> None:
        self.listener = listener
        self._complain = complain
        self._pending: deque[Announcement] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._overflowing = False

    def post(self, announcement: Announcement) -> None:
        """Queue `announcement`; never waits. Delivery starts once an event loop runs."""
        if len(self._pending) >= MAILBOX_SIZE:
            self._overflow()
            return
        self._overflowing = False
        self._pending.append(announcement)
        if self._task is None or self._task.done():
            self._start()
        elif self._wakeup is not None:
            self._wakeup.set()

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # announced before any loop runs (an engine built outside one): delivered with the next one
        self._wakeup = asyncio.Event()
        self._task = loop.create_task(self._deliver(self._wakeup), name=f"listener-{_name(self.listener)}")

    async def _deliver(self, wakeup: asyncio.Event) -> None:
        while True:
            while self._pending:
                announcement = self._pending.popleft()
                try:
                    await self.listener.hear(announcement)
                except Exception as exc:  # a listener's failure is its own: log it and go on
                    self._complain(self.listener, exc)
            wakeup.clear()
            await wakeup.wait()

    def _overflow(self) -> None:
        if not self._overflowing:
            log.error("listener %s is %d announcements behind; dropping new ones until it catches up (the journal "
                      "keeps every transition)", _name(self.listener), len(self._pending))
        self._overflowing = True


class Announcer:
    """Hands each announcement to every listener: the synchronous ones at once, the async ones by mailbox."""

    def __init__(self, listeners: Sequence[Listener | AsyncListener] = ()) -> None:
        self._complain = Complaints()
        self.listeners = tuple(listeners)
        """Every listener, in the order given (the API finds the metrics among them)."""
        self._direct: list[Listener] = []
        self._mailboxes: list[Mailbox] = []
        self._held: list[Announcement] | None = None
        for listener in self.listeners:
            if _is_async(listener):
                self._mailboxes.append(Mailbox(listener, self._complain))
            elif _is_sync(listener):
                self._direct.append(listener)

    def announce(self, announcement: Announcement) -> None:
        """Tell every listener; returns without awaiting any of them, whatever they do."""
        if self._held is not None:
            self._held.append(announcement)
            return
        self._tell(announcement)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Keep what is announced inside, and tell it only if the block ends well (a group commit: its lines
        are durable only once the whole batch is committed); a block that raises drops them."""
        if self._held is not None:
            yield
            return
        self._held = []
        try:
            yield
        except BaseException:
            self._held = None
            raise
        held, self._held = self._held, None
        for announcement in held:
            self._tell(announcement)

    def _tell(self, announcement: Announcement) -> None:
        for listener in self._direct:
            try:
                listener.hear(announcement)
            except Exception as exc:  # a listener's failure is its own: log it and go on
                self._complain(listener, exc)
        for mailbox in self._mailboxes:
            mailbox.post(announcement)

    async def aclose(self) -> None:
        """Stop every delivery task; what their mailboxes still held is dropped."""
        for mailbox in self._mailboxes:
            with contextlib.suppress(Exception):
                await mailbox.aclose()


def _is_async(listener: Listener | AsyncListener) -> TypeGuard[AsyncListener]:
    return inspect.iscoroutinefunction(listener.hear)


def _is_sync(listener: Listener | AsyncListener) -> TypeGuard[Listener]:
    return not inspect.iscoroutinefunction(listener.hear)


def _name(listener: object) -> str:
    return type(listener).__name__
