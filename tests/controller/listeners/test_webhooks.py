"""The webhook outbox reads the journal: start and end of each drain, once, and after a restart it resumes from
the last line it dealt with (what was not delivered yet is sent then, with the same delivery id)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry

from controller.core.models import Drain, EventKind, LifecycleEvent, Outcome, Phase
from controller.journal.sqlite import SqliteJournal
from controller.listeners.webhooks import Cursor, WebhookOutbox, cursor_path
from controller.notifying.config import WebhookConfig
from controller.notifying.sending import DeliveryMetrics, Webhooks
from tests.fakes.threaded import Handle, serve
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support.tasks import async_test, running
from tests.support.tokens import write_secret
from tests.support.waiting import until

T0 = 1_790_000_000.0
PATH = "/hook"
AUTH = "Bearer t"


def _episode(journal: SqliteJournal, instance: str, path: list[tuple[Phase, Outcome | None]]) -> None:
    event = LifecycleEvent.create(instance=instance, kind=EventKind.TERMINATE, not_after=T0 + 60, source="local")
    drain = journal.create(
        Drain(id=0, instance=instance, pool="web", source="local", kind=event.kind, event_id=event.id,
              not_after=event.not_after, rate_per_s=500.0, drain_deadline_s=20.0, needs_release=True,
              phase_since=T0, created_at=T0, updated_at=T0),
        event=event, at=T0, step="event accepted",
    )
    for number, (phase, outcome) in enumerate(path, start=1):
        at = T0 + number
        after = dataclasses.replace(drain, phase=phase, outcome=outcome, updated_at=at, phase_since=at,
                                    reason="no progress" if phase is Phase.FORCING else drain.reason)
        drain = journal.record(drain, after, step=f"to {phase}")


def _outbox(journal: SqliteJournal, tmp_path: Path, url: str) -> WebhookOutbox:
    hook = WebhookConfig.model_validate({
        "name": "ops", "url_file": str(write_secret(tmp_path / "u", url + PATH)),
        "headers_file": str(write_secret(tmp_path / "h", f"Authorization: {AUTH}")),
        "retry_initial_s": 0.05, "retry_max_s": 0.1,
    })
    cursor = Cursor(cursor_path(tmp_path / "journal.sqlite", hook))
    return WebhookOutbox(journal, Webhooks([hook], DeliveryMetrics(CollectorRegistry())), [cursor], poll_s=0.05)


async def _delivered(receiver: Handle[WebhookReceiver], count: int) -> list[tuple[str, str]]:
    async def enough() -> list[tuple[str, str]] | None:
        got = [(a.delivery_id, a.body["drainctl"]["outcome"] or "") for a in receiver.delivered()]
        return got if len(got) >= count else None

    return await until(enough, what=f"{count} deliveries")


@async_test
async def test_start_and_end_of_each_drain_once_and_a_restart_resumes_where_it_was(tmp_path: Path) -> None:
    journal = SqliteJournal(tmp_path / "journal.sqlite")
    _episode(journal, "old", [(Phase.DRAINING, None), (Phase.VERIFYING, None), (Phase.DRAINED, Outcome.GRACEFUL)])
    with serve(WebhookReceiver(path=PATH, authorization=AUTH, fail_first=1)) as receiver:
        outbox = _outbox(journal, tmp_path, receiver.url)
        async with running(outbox.run()):
            await until(lambda: cursor_path(tmp_path / "journal.sqlite", outbox.webhooks.hooks[0]).exists(),
                        what="the outbox to start at the journal's end")
            _episode(journal, "A", [(Phase.DRAINING, None), (Phase.VERIFYING, None),
                                    (Phase.DRAINED, Outcome.GRACEFUL), (Phase.RELEASED, Outcome.GRACEFUL)])
            first = await _delivered(receiver, 2)
            end = journal.transitions(limit=1)[-1].seq
            cursor = Cursor(cursor_path(tmp_path / "journal.sqlite", outbox.webhooks.hooks[0]))
            await until(lambda: (cursor.load() or 0) >= end, what="the cursor past A's last line")
        await outbox.aclose()
        _episode(journal, "C", [(Phase.DRAINING, None), (Phase.VERIFYING, None), (Phase.FORCING, None),
                                (Phase.DRAINED, Outcome.FORCED)])
        _episode(journal, "F", [(Phase.FAILED, Outcome.FAILED)])
        restarted = _outbox(journal, tmp_path, receiver.url)
        async with running(restarted.run()):
            every = await _delivered(receiver, 5)
        await restarted.aclose()
        attempts = receiver.attempts
    assert [outcome for _, outcome in first] == ["", "graceful"], "history before the first start is not replayed"
    assert [(ident.split(".", 1)[1], outcome) for ident, outcome in every] == [
        ("drain.started", ""), ("drain.ended", "graceful"),  # A, before the restart
        ("drain.started", ""), ("drain.ended", "forced"), ("drain.ended", "failed"),  # C and F, after it
    ]
    assert len({ident for ident, _ in every}) == 5, "each notification once"
    for ident, _ in every:
        assert [a.status for a in attempts if a.delivery_id == ident] == [500, 200], "a retry keeps the id"
