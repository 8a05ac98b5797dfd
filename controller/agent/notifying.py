"""The agent's own webhooks: the fallback acts exactly when the controller is silent, so the agent tells.

`fallback.started` when the fallback first acts on the host for a notice (its drain, or its reset of a drain
the controller left unreleased), `fallback.ended` when it is about to release the notice, with the outcome:
`drained` (the count reached zero), `forced` (the agent reset what was left), `controller` (the controller
drained but did not release in time; the agent reset and released). Delivery runs in tasks of its own, never
inside the fallback's steps, so a hanging receiver cannot delay a drain or a reset.

A released host is deleted within seconds (the testbed kills it at once), so before releasing, the agent waits
for the notice's deliveries to finish, at most `fallback.webhook_wait_s` and never past the fallback's
deadline: a receiver that is down delays the release a little, never past the deadline, and never the drain.
The delivery id is `agent-<instance>-<notice id>.<event>`, the same on every attempt and after a restart, so a
receiver dedupes. What is still being retried when the agent is killed is lost (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib

from controller.agent.notices import Notice
from controller.notifying.bodies import EventKind, Notification
from controller.notifying.sending import Webhooks


def outcome_of(notice: Notice) -> str:
    """What the fallback did, read off the notice as it is released by the agent."""
    if notice.drain_started_by == "controller":
        return "controller"
    return "drained" if notice.reset is None else "forced"


class FallbackNotices:
    """Sends the fallback's notifications: each notice's start at most once per run, its end before release."""

    def __init__(self, webhooks: Webhooks, *, instance: str) -> None:
        self.webhooks = webhooks
        self._instance = instance
        self._sending: dict[str, list[asyncio.Task[None]]] = {}
        self._ended: set[str] = set()

    def acting(self, notices: list[Notice], *, at: float) -> None:
        """The fallback acts on the host (drain or reset by the agent): `fallback.started` for each notice."""
        for notice in notices:
            if notice.id not in self._sending:
                self._send(notice, EventKind.FALLBACK_STARTED, at=at)

    async def releasing(self, notice: Notice, *, at: float, wait_s: float) -> None:
        """`fallback.ended` (once: a failed release is tried again), then wait (at most `wait_s`) until the
        notice's deliveries are done."""
        if notice.id not in self._ended:
            self._ended.add(notice.id)
            self._send(notice, EventKind.FALLBACK_ENDED, at=at, outcome=outcome_of(notice))
        tasks = [task for task in self._sending.get(notice.id, []) if not task.done()]
        if tasks and wait_s > 0:
            await asyncio.wait(tasks, timeout=wait_s)

    def _send(self, notice: Notice, event: EventKind, *, at: float, outcome: str | None = None) -> None:
        notification = Notification(
            event=event, delivery_id=f"agent-{self._instance}-{notice.id}.{event.value}", instance=self._instance,
            at=at, by="agent", outcome=outcome, source=notice.source, sockets_reset=notice.reset,
            reason=f"{notice.kind} notice {notice.id}",
        )
        task = asyncio.get_running_loop().create_task(self.webhooks.deliver(notification), name=f"webhook-{event}")
        self._sending.setdefault(notice.id, []).append(task)

    async def aclose(self) -> None:
        """Stop what is still being retried (lost), then the connection pool."""
        tasks = [task for tasks in self._sending.values() for task in tasks if not task.done()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.webhooks.aclose()
