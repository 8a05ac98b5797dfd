"""Group commit of pushed notices: the events of concurrent pushes are taken in batches, one journal commit each.

A storm (1,000 agents pushing the moment their notices appear) used to cost one durable journal write, one
fsync, per push, one after another inside each request: 56 s to accept 1,000 on a busy disk. Here each push
handler queues its event and waits; one task takes whatever is queued (up to `max_batch`) to the engine's
`submit_all`, which writes the lot in one SQLite transaction and commits it once. No delay is added to wait for
company: a batch is whatever arrived while the previous commit was on disk, so a lone push is taken at once
and a storm is taken in a few commits.

Durability is the same as one at a time: a push is answered (202) only after the commit that holds its event
has returned; a commit that fails answers every push of its batch with the temporary `JournalError` (503),
and their agents retry. A controller killed between the commit and the answers has journaled what it did not
answer (the agents' retries are duplicates, answered `duplicate`); killed before the commit, it journaled
none of the batch and answered none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from controller.core.errors import DrainctlError
from controller.core.models import LifecycleEvent
from controller.engine import Submission

log = logging.getLogger("drainctl.api")

SubmitAll = Callable[[Sequence[LifecycleEvent]], list[Submission | DrainctlError]]

MAX_BATCH = 256
"""Events per commit at most: a larger batch holds the event loop longer (about 0.2 ms an event here)."""


class GroupCommit:
    """The queue between the push handlers and the engine; `submit` returns once the event is durable."""

    def __init__(self, submit_all: SubmitAll, *, max_batch: int = MAX_BATCH) -> None:
        self._submit_all = submit_all
        self._max_batch = max_batch
        self._queue: list[tuple[LifecycleEvent, asyncio.Future[Submission | DrainctlError]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches: list[int] = []
        """The size of every batch taken so far (for the tests; a short list in practice: storms are rare)."""

    async def submit(self, event: LifecycleEvent) -> Submission:
        """The engine's submission of `event`, once it is journaled; its error (ours) otherwise."""
        future: asyncio.Future[Submission | DrainctlError] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._start()
        self._wakeup.set()
        result = await future
        if isinstance(result, DrainctlError):
            raise result
        return result

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._queue:
            future.cancel()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="push-group-commit")

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(0)  # the pushes already parsed in this turn of the loop join the batch
            while self._queue:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                self._take(batch)
                await asyncio.sleep(0)  # answer this batch's requests before committing the next

    def _take(self, batch: list[tuple[LifecycleEvent, asyncio.Future[Submission | DrainctlError]]]) -> None:
        self.batches.append(len(batch))
        try:
            results = self._submit_all([event for event, _ in batch])
        except Exception as exc:  # a defect, not a refusal: every push of the batch gets it (500), the next goes on
            log.exception("push intake: a batch of %d failed", len(batch))
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(batch) > 1:
            log.debug("push intake: %d pushes taken in one journal commit", len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
