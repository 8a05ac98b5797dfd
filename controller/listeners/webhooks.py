"""Webhooks at drain start and end, read from the journal as an outbox, so a crash loses none.

A notification is derived from journaled transitions only (never from the engine's memory), by one loop per
webhook (a leader-only runnable) that reads `journal.transitions(after_seq=cursor)` and remembers, in a small
file beside the journal (`<journal>.webhook-<name>.seq`), the last seq it has dealt with. The engine's
announcements only wake the loops (`hear` is synchronous and does nothing else), so a webhook never runs in a
decide-and-write step and a hanging receiver delays neither a drain nor the other webhooks.

    pending -> draining | forcing       drain.started
    -> drained                          drain.ended, outcome graceful or forced
    -> failed (not after drained)       drain.ended, outcome failed

After a restart a loop resumes after its cursor: a notification that was being retried when the controller
stopped is sent again with the same delivery id (`<event id>-<drain id>.<event>`), so delivery is at least once
and receivers dedupe by the id. A first start (no cursor file) begins at the journal's end: history is not
replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from controller.core.announcements import Announcement, Journaled
from controller.core.errors import JournalError
from controller.core.models import Drain, Phase, Transition
from controller.core.ports import Journal
from controller.notifying.bodies import EventKind, Notification
from controller.notifying.config import WebhookConfig
from controller.notifying.sending import Webhooks

log = logging.getLogger("drainctl.listeners.webhooks")

POLL_S = 5.0
"""A loop looks at the journal at least this often, even when no announcement woke it."""
BATCH = 200
"""Journal lines read at a time."""


def event_of(line: Transition) -> EventKind | None:
    """Which notification a journal line is, if any."""
    if line.previous is Phase.PENDING and line.phase in (Phase.DRAINING, Phase.FORCING):
        return EventKind.DRAIN_STARTED
    if line.phase is Phase.DRAINED and line.previous is not Phase.DRAINED:
        return EventKind.DRAIN_ENDED
    if line.phase is Phase.FAILED and line.previous not in (Phase.FAILED, Phase.DRAINED):
        return EventKind.DRAIN_ENDED
    return None


def notification(line: Transition, event: EventKind, drain: Drain | None) -> Notification:
    """The notification of `line`, with what the episode's row says (its outcome, reason, event id)."""
    ended = event is EventKind.DRAIN_ENDED
    outcome = None
    if ended:
        outcome = "failed" if line.phase is Phase.FAILED else (drain.outcome.value if drain and drain.outcome else None)
    ident = f"{drain.event_id}-{line.drain_id}" if drain is not None else f"drain-{line.drain_id}"
    return Notification(
        event=event, delivery_id=f"{ident}.{event.value}", instance=line.instance, at=line.at, by="controller",
        drain_id=line.drain_id, outcome=outcome, source=drain.source if drain else None,
        reason=(drain.reason if drain and (ended or line.phase is Phase.FORCING) else None),
        sockets_reset=drain.sockets_reset if drain and ended else None,
    )


class Cursor:
    """The last journal seq a webhook's loop dealt with, in a file (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int | None:
        try:
            return int(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def save(self, seq: int) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(f"{seq}\n", encoding="utf-8")
        os.replace(partial, self.path)


class WebhookOutbox:
    """A listener (wakes the loops) and a runnable (`run`: one loop per webhook, until cancelled)."""

    def __init__(self, journal: Journal, webhooks: Webhooks, cursors: Sequence[Cursor], *, poll_s: float = POLL_S):
        self._journal = journal
        self.webhooks = webhooks
        self._cursors = tuple(cursors)
        self._poll_s = poll_s
        self._wakeups = [asyncio.Event() for _ in cursors]

    def hear(self, announcement: Announcement) -> None:
        if isinstance(announcement, Journaled) and event_of(announcement.line) is not None:
            for wakeup in self._wakeups:
                wakeup.set()

    async def run(self) -> None:
        loops = [self._loop(hook, cursor, wakeup)
                 for hook, cursor, wakeup in zip(self.webhooks.hooks, self._cursors, self._wakeups, strict=True)]
        await asyncio.gather(*loops)

    async def aclose(self) -> None:
        await self.webhooks.aclose()

    async def _loop(self, hook: WebhookConfig, cursor: Cursor, wakeup: asyncio.Event) -> None:
        after = cursor.load()
        while True:
            try:
                if after is None:
                    after = self._end_of_journal()
                    cursor.save(after)
                after, full = await self._pass(hook, cursor, after)
            except (JournalError, OSError) as exc:
                log.warning("webhook %s: cannot read the journal or keep its place (%s); trying again", hook.name, exc)
                full = False
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), self._poll_s)
                wakeup.clear()

    def _end_of_journal(self) -> int:
        latest = self._journal.transitions(limit=1)
        return latest[-1].seq if latest else 0

    async def _pass(self, hook: WebhookConfig, cursor: Cursor, after: int) -> tuple[int, bool]:
        """Deliver what follows `after`; the new cursor, and whether there may be more to read at once."""
        lines = self._journal.transitions(after_seq=after, limit=BATCH)
        for line in lines:
            event = event_of(line)
            if event is not None and hook.wants(event):
                await self.webhooks.deliver_to(hook, notification(line, event, self._drain(line)))
                cursor.save(line.seq)
            after = line.seq
        if lines:
            cursor.save(after)
        return after, len(lines) == BATCH

    def _drain(self, line: Transition) -> Drain | None:
        for drain in self._journal.drains(instance=line.instance, limit=50):
            if drain.id == line.drain_id:
                return drain
        return None


def cursor_path(journal: Path | str, hook: WebhookConfig) -> Path:
    """Where a webhook's cursor lives: beside a SQLite journal; with a Postgres journal (a URL), in the
    controller's state directory (systemd's `$STATE_DIRECTORY`, else /var/lib/drainctl). The cursor is this
    controller's own: after a failover the new leader resends from its cursor (same delivery ids)."""
    if isinstance(journal, str):
        state = Path(os.environ.get("STATE_DIRECTORY", "/var/lib/drainctl").split(":")[0])
        return state / f"webhook-{hook.name}.seq"
    return journal.with_name(f"{journal.name}.webhook-{hook.name}.seq")
