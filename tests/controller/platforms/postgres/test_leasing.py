"""The Postgres lease on a real server: one holder at a time, takeover after expiry with a new epoch, and a
deposed holder's journal writes refused by the fence."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from controller.core.fencing import JournalFenced
from controller.core.models import Drain, EventKind, LifecycleEvent, Phase
from controller.journal.postgres import PostgresJournal
from controller.platforms.postgres.config import PostgresLeaderConfig
from controller.platforms.postgres.leasing import PostgresElector
from tests.support.postgres import PostgresServer
from tests.support.tasks import async_test, running
from tests.support.waiting import until


def _pair(server: PostgresServer, url: str, holder: str) -> tuple[PostgresJournal, PostgresElector]:
    journal = PostgresJournal(url, password_file=server.password_file)
    settings = PostgresLeaderConfig(holder=holder, lease_s=1.5, renew_s=0.5, advertise_url=f"http://{holder}:9300")
    return journal, PostgresElector(url, journal.connection_settings, journal.fenced_by("drainctl"), settings)


def _created(store: PostgresJournal) -> Drain:
    event = LifecycleEvent.create(instance="A", kind=EventKind.TERMINATE, not_after=100.0, source="local")
    draft = Drain(id=0, instance="A", pool="web", source="local", kind=event.kind, event_id=event.id,
                  not_after=100.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True)
    return store.create(draft, event=event, at=0.0, step="event accepted")


@async_test
async def test_a_standby_takes_an_expired_lease_with_a_new_epoch_and_the_old_holder_is_fenced(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    journal_a, a = _pair(postgres_server, postgres_url, "a")
    journal_b, b = _pair(postgres_server, postgres_url, "b")
    try:
        assert await a.try_acquire_or_renew() and a.epoch == 1
        drain = _created(journal_a)
        assert not await b.try_acquire_or_renew(), "two holders of one live lease"
        assert b.leader_url == "http://a:9300", "the standby does not know where the leader is"
        # a stops renewing (paused); b takes over once the lease expired by the database's clock
        await until(b.try_acquire_or_renew, within_s=30, what="b to take the expired lease")
        assert b.epoch == 2
        with pytest.raises(JournalFenced):
            journal_a.record(drain, dataclasses.replace(drain, phase=Phase.DRAINING), step="drain requested")
        assert not a.leading and a.fence.refused_total == 1
        assert not await a.try_acquire_or_renew(), "the deposed holder renewed a lease it lost"
        moved = journal_b.record(drain, dataclasses.replace(drain, phase=Phase.DRAINING), step="drain requested")
        assert journal_b.latest("A") == moved
    finally:
        for journal, elector in ((journal_a, a), (journal_b, b)):
            await elector.aclose()
            journal.close()


@async_test
async def test_only_one_of_two_runs_its_work_and_a_clean_stop_hands_over_at_once(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    journal_a, a = _pair(postgres_server, postgres_url, "a")
    journal_b, b = _pair(postgres_server, postgres_url, "b")
    working: set[str] = set()

    def work(name: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            working.add(name)
            try:
                await asyncio.Event().wait()
            finally:
                working.discard(name)
        return run

    try:
        async with running(a.lead(work("a"))) as leading_a:
            await until(lambda: working == {"a"}, what="a to lead")
            async with running(b.lead(work("b"))):
                await until(lambda: b.leader_url == "http://a:9300", what="b to see a as the leader")
                assert working == {"a"}
                leading_a.cancel()  # a stops cleanly and releases the row
                await until(lambda: working == {"b"}, what="b to take over after a released the lease")
                assert b.epoch == 2 and b.leading and not a.leading
    finally:
        for journal, elector in ((journal_a, a), (journal_b, b)):
            await elector.aclose()
            journal.close()
