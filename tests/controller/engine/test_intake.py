"""Issue 9: the engine's intake and ownership under faults: events merged during I/O, operators' drains meeting
platform notices, journal errors at intake, leadership lost and won back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from controller.core.errors import JournalError
from controller.core.models import Disposition, Drain, LifecycleEvent, Phase
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, FakeReleaser, make_world
from tests.support.tasks import async_test
from tests.support.waiting import until


@async_test
async def test_an_event_merged_while_the_drain_call_is_out_keeps_its_deadline_and_handle(tmp_path: Path) -> None:
    """issue 9, case 1: a tighter notice merged while the pass waits on the drain call is not overwritten."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=100, behaviour="ignore", drain_blocks=asyncio.Event())
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.submit(world.notice("A", in_s=90, ref="first"))
    passing = asyncio.create_task(world.engine.run_due())
    await until(lambda: host.drains, what="the drain request to reach the host")
    tighter = world.notice("A", in_s=30, ref="second")
    assert world.engine.submit(tighter).disposition is Disposition.MERGED
    assert host.drain_blocks is not None
    host.drain_blocks.set()
    await passing
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.not_after == tighter.not_after
    assert drain.release_by is not None and drain.release_by < tighter.not_after
    [release] = world.releaser.releases
    assert set(release.refs) == {"first", "second"}, "the merged notice's handle is released too"
    assert release.at < tighter.not_after
    assert world.store.latest("A") == drain, "the journal holds what the engine holds"


class SlowCounter(FakeHost):
    """A host whose next socket count hangs until `count_blocks` is set."""

    count_blocks: asyncio.Event | None = None

    async def connections(self) -> int:
        blocks = self.count_blocks
        if blocks is not None:
            self.count_blocks = None
            await blocks.wait()
        return await super().connections()


@async_test
async def test_an_event_merged_while_a_count_is_out_keeps_its_deadline_and_handle(tmp_path: Path) -> None:
    """issue 9, case 1: a tighter notice merged while the pass waits on the socket count is not overwritten."""
    clock = FakeClock()
    host = SlowCounter(clock, sockets=0)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    blocks = host.count_blocks = asyncio.Event()
    world.engine.submit(world.notice("A", in_s=90, ref="first"))
    passing = asyncio.create_task(world.engine.run_due())
    await until(lambda: host.count_blocks is None, what="the count to be asked for")
    tighter = world.notice("A", in_s=30, ref="second")
    assert world.engine.submit(tighter).disposition is Disposition.MERGED
    blocks.set()
    await passing
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.not_after == tighter.not_after
    [release] = world.releaser.releases
    assert set(release.refs) == {"first", "second"}, "the merged notice's handle is released too"


@async_test
async def test_a_handle_merged_while_the_release_call_is_out_is_released_once(tmp_path: Path) -> None:
    """issue 9, case 1: a notice merged during the release call gets its own release; none is released twice."""
    clock = FakeClock()
    late: list[LifecycleEvent] = []

    def merge_during_release(drain: Drain) -> None:
        if not late:
            late.append(world.notice("A", in_s=40, ref="second"))
            assert world.engine.submit(late[0]).disposition is Disposition.MERGED

    world = make_world(tmp_path / "journal.db", hosts={"A": FakeHost(clock, sockets=10)}, clock=clock,
                       releaser=FakeReleaser(clock, on_release=merge_during_release))
    world.engine.submit(world.notice("A", in_s=60, ref="first"))
    await world.settle()

    released = [ref for release in world.releaser.releases for ref in release.refs]
    assert sorted(released) == ["first", "second"], "every handle is released exactly once"
    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED and set(drain.handles()) == {"first", "second"}


@async_test
async def test_a_platform_notice_joining_an_operators_drain_is_released(tmp_path: Path) -> None:
    """issue 9, case 3: a notice merged into a running manual drain makes it hold for the platform and release it."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=100, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    assert world.engine.drain("A", deadline_s=10).disposition is Disposition.STARTED
    await world.advance(0.5)
    notice = world.notice("A", in_s=60, ref="maintenance-1")
    assert world.engine.submit(notice).disposition is Disposition.MERGED
    await world.settle()

    [release] = world.releaser.releases
    assert release.refs == ("maintenance-1",) and release.at < notice.not_after
    assert len(host.drains) == 1, "one drain request for the one episode"
    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED and drain.released_at is not None


class Undestroyable(FakeHost):
    """A host whose reset always leaves `stuck` sockets open (issue 9, case 9) and reports success."""

    stuck: int = 2

    async def reset(self) -> int:
        reset = await super().reset()
        self.sockets = self.stuck
        return reset - self.stuck


@async_test
async def test_a_platform_notice_joining_an_operators_drain_is_released_by_the_platforms_deadline(
    tmp_path: Path,
) -> None:
    """issue 9, case 3 (with case 9's sockets that never go; the simulation's seed 1173): a notice whose deadline
    falls after the operator's deadline but before the operator's release deadline, merged into the manual drain,
    used to keep the operator's timers, and the episode was released after the platform's deadline."""
    clock = FakeClock()
    host = Undestroyable(clock, sockets=100, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.drain("A", deadline_s=20)
    await world.advance(0.5)
    notice = world.notice("A", in_s=22, ref="maintenance-1")
    manual = world.engine.get("A")
    assert manual is not None and manual.release_by is not None
    assert manual.not_after < notice.not_after < manual.release_by, "the case: between the operator's timers"
    assert world.engine.submit(notice).disposition is Disposition.MERGED
    await world.settle()

    [release] = world.releaser.releases
    assert release.refs == ("maintenance-1",) and release.at < notice.not_after
    drain = world.engine.get("A")
    assert drain is not None and drain.not_after == notice.not_after, "the platform's deadline is the episode's"
    assert drain.released_at is not None and drain.sockets_last == 2, "released as failed, with what was left"


@async_test
async def test_a_platform_notice_after_a_finished_operators_drain_is_drained_and_released(tmp_path: Path) -> None:
    """issue 9, case 3: a notice after a finished manual drain is not stale: a new episode drains and releases."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=100)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock)
    world.engine.drain("A", deadline_s=300)
    await world.settle()
    manual = world.engine.get("A")
    assert manual is not None and manual.phase is Phase.RELEASED
    notice = world.notice("A", in_s=60, ref="maintenance-1")
    assert notice.not_after <= manual.not_after, "earlier than the operator's deadline: it looked like a late copy"
    assert world.engine.submit(notice).disposition is Disposition.STARTED
    await world.settle()

    [release] = world.releaser.releases
    assert release.refs == ("maintenance-1",) and release.at < notice.not_after
    assert [d.phase for d in world.engine.history(instance="A")] == [Phase.RELEASED, Phase.RELEASED]


class FlakyJournal(SqliteJournal):
    """A journal whose first `failures` episode creations fail as a full disk would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def create(self, draft: Drain, **kwargs: Any) -> Drain:
        if self.failures:
            self.failures -= 1
            raise JournalError(f"journal: write to {str(self.path)!r} failed: database or disk is full")
        return super().create(draft, **kwargs)


class OneNotice:
    """A source that emits one event once (it remembers what it emitted, as the real ones do), then watches on."""

    name = "local"

    def __init__(self, event: LifecycleEvent) -> None:
        self.event = event
        self.emitted = False

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        if not self.emitted:
            self.emitted = True
            yield self.event
        await asyncio.Event().wait()


@async_test
async def test_an_event_the_journal_could_not_take_is_taken_again_and_drained(tmp_path: Path) -> None:
    """issue 9, case 4: a journal error at intake does not lose the event: the engine takes it again later."""
    clock = FakeClock()
    store = FlakyJournal(tmp_path / "journal.db", failures=2)
    host = FakeHost(clock, sockets=10)
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock, store=store)
    notice = world.notice("A", in_s=60, ref="maintenance-1")
    source = OneNotice(notice)
    running = asyncio.create_task(world.engine.run([source]))
    try:
        await until(lambda: source.emitted and store.failures == 1, what="the first try to fail")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert world.engine.get("A") is None
    await world.advance(30)

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    assert len(host.drains) == 1
    [release] = world.releaser.releases
    assert release.refs == ("maintenance-1",) and release.at < notice.not_after


@async_test
async def test_a_replica_that_wins_the_leadership_back_acts_on_what_the_journal_says_now(tmp_path: Path) -> None:
    """issue 9, case 11: leadership regained: the episodes are reloaded from the journal, not kept from before."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=50, behaviour="ignore")
    releaser = FakeReleaser(clock)
    journal = tmp_path / "journal.db"
    first = make_world(journal, hosts={"A": host}, clock=clock, releaser=releaser)
    first.engine.submit(first.notice("A", in_s=60, ref="n1"))
    await first.advance(1.0)  # the first replica leads: A is being drained, then it loses the leadership
    second = make_world(journal, hosts={"A": host}, clock=clock, releaser=releaser)
    await second.settle()  # the second replica leads: it sees A through and takes a new notice for it
    later = second.notice("A", in_s=120, ref="n2")
    assert second.engine.submit(later).disposition is Disposition.STARTED
    newest = second.engine.get("A")
    assert newest is not None

    running = asyncio.create_task(first.engine.run([]))  # the first replica wins the leadership back
    try:
        await until(lambda: (d := first.engine.get("A")) is not None and d.id == newest.id,
                    what="the first replica to hold the journal's newest episode")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    await first.settle()

    drain = first.engine.get("A")
    assert drain is not None and drain.id == newest.id and drain.phase is Phase.RELEASED
    assert sorted(ref for release in releaser.releases for ref in release.refs) == ["n1", "n2"]
    assert len(host.drains) == 2, "one drain request per episode"


class FailingAtTheDeadline(SqliteJournal):
    """A journal whose first `failures` writes of the step "failed" fail as a full disk would."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    def record(self, before: Drain, after: Drain, **kwargs: Any) -> Drain:
        if kwargs.get("step") == "failed" and self.failures:
            self.failures -= 1
            raise JournalError(f"journal: write to {str(self.path)!r} failed: database or disk is full")
        return super().record(before, after, **kwargs)


@async_test
async def test_a_journal_error_at_the_release_deadline_does_not_make_the_release_late(tmp_path: Path) -> None:
    """issue 9, found by the simulation (seed 1222, with case 9's sockets): a journal error as a stuck episode
    failed at its release deadline was retried after the full backoff, past the platform's deadline."""
    clock = FakeClock()
    store = FailingAtTheDeadline(tmp_path / "journal.db", failures=2)
    host = Undestroyable(clock, sockets=100, behaviour="ignore")
    world = make_world(tmp_path / "journal.db", hosts={"A": host}, clock=clock, store=store)
    notice = world.notice("A", in_s=20, ref="n1")
    world.engine.submit(notice)
    await world.settle()

    assert store.failures == 0, "both writes failed"
    [release] = world.releaser.releases
    assert release.at < notice.not_after
