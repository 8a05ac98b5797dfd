"""Issue 9, beyond the eleven: a second platform's handle merged into another platform's drain episode.

An instance can be held by two platforms at once: a GCP preemption notice (source gcp) and, for the same
instance, the agent-pushed notice of the notices platform (source local) or a Kubernetes preStop hold. Each
platform waits for its own handle until its own deadline, so the episode keeps both handles, each with its
source, and releases each through its own source's releaser, once, before the earliest deadline; one
platform's failure or refusal neither stops nor repeats the other's release, and a controller killed after any
journal write releases neither twice (the journal says which source's handles are released).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.core.models import Disposition, EventKind, LifecycleEvent, Phase, Ref
from controller.hosts.client import AgentError, AgentUnavailable
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, FakeReleaser, Release, World, make_world
from tests.controller.engine.test_resume import DyingStore, Killed
from tests.support.tasks import async_test


def _preemption(world: World, *, in_s: float, ref: str = "H1") -> LifecycleEvent:
    """GCP's notice for A (its own handle, its own deadline)."""
    return LifecycleEvent.create(instance="A", kind=EventKind.PREEMPT, not_after=world.clock.now() + in_s,
                                 source="gcp", ref=ref)


def _two_platforms(journal: Path, clock: FakeClock, host: FakeHost, gcp: FakeReleaser,
                   store: SqliteJournal | None = None) -> World:
    return make_world(journal, hosts={"A": host}, clock=clock, more_releasers={"gcp": gcp}, store=store)


@async_test
async def test_a_second_platforms_handle_is_kept_and_released_by_its_own_releaser(tmp_path: Path) -> None:
    """issue 9, beyond the eleven: a second platform's handle. A GCP preemption (H1, 90 s) is draining when the
    agent's notice for the same instance arrives (local, H2, 60 s, the tighter deadline): H2 used to be dropped
    from the episode and never released, so that platform held the instance for its whole window."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=200, behaviour="ignore")
    gcp = FakeReleaser(clock)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    preemption = _preemption(world, in_s=90)
    assert world.engine.submit(preemption).disposition is Disposition.STARTED
    await world.advance(1.0)
    notice = world.notice("A", in_s=60, ref="H2")
    assert world.engine.submit(notice).disposition is Disposition.MERGED
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED and drain.source == "gcp"
    assert [(r.source, r.handle) for r in drain.refs] == [("gcp", "H1"), ("local", "H2")]
    assert all(r.released_at is not None and r.released_at < notice.not_after for r in drain.refs)
    assert drain.not_after == notice.not_after, "the episode keeps the earliest deadline, the second platform's"
    assert [r.refs for r in gcp.releases] == [("H1",)], "gcp released its own handle only, once"
    assert [r.refs for r in world.releaser.releases] == [("H2",)], "the notices platform released H2, once"
    assert all(r.at < notice.not_after for r in [*gcp.releases, *world.releaser.releases])
    assert len(host.drains) == 1, "one drain request for the episode"
    assert world.engine.get("A") == world.store.latest("A"), "the journal holds both handles with their release"


@async_test
async def test_one_platforms_temporary_failures_do_not_repeat_or_hold_up_the_others_release(tmp_path: Path) -> None:
    """issue 9, beyond the eleven: a second platform's handle. The local release answers 503 twice: it is retried
    on its own until it succeeds, before the deadline; gcp's, which succeeded at once, is not repeated."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=0)
    gcp = FakeReleaser(clock)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    world.releaser.failures = [AgentUnavailable("agent: release: 503", status=503) for _ in range(2)]
    world.engine.submit(_preemption(world, in_s=90))
    notice = world.notice("A", in_s=60, ref="H2")
    world.engine.submit(notice)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    assert [r.refs for r in gcp.releases] == [("H1",)] and gcp.attempts == 1
    assert [r.refs for r in world.releaser.releases] == [("H2",)] and world.releaser.attempts == 3
    assert world.releaser.releases[0].at < notice.not_after
    assert "drained:released (gcp)" in world.steps("A"), "gcp's release journaled before local's retries"


@async_test
async def test_one_platforms_refusal_does_not_stop_the_others_release(tmp_path: Path) -> None:
    """issue 9, beyond the eleven: a second platform's handle. GCP refuses its release (permanent): the local
    handle is still released, once; the episode says which platform refused and why."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=0)
    gcp = FakeReleaser(clock)
    gcp.always = AgentError("agent: release: 409 Conflict", status=409)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    preemption, notice = _preemption(world, in_s=90), world.notice("A", in_s=60, ref="H2")
    world.engine.submit(preemption)
    world.engine.submit(notice)
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.finished and drain.phase is Phase.FAILED
    assert gcp.attempts == 1, "a refusal is not retried"
    assert [r.refs for r in world.releaser.releases] == [("H2",)]
    assert drain.release_error == "gcp: agent: release: 409 Conflict", "which platform refused, and why"
    assert drain.refs == (Ref("gcp", "H1", preemption.not_after, release_error="agent: release: 409 Conflict"),
                          Ref("local", "H2", notice.not_after, released_at=world.releaser.releases[0].at))


@async_test
async def test_a_platforms_failing_release_is_retried_until_its_own_deadline_not_the_earlier_one(
    tmp_path: Path,
) -> None:
    """issue 9, beyond the eleven: a second platform's handle (found by the simulation, seed 1670). The agent's
    notice (local, 30 s) makes the episode's deadline; GCP's own is 90 s. GCP's release answers 503 past the
    earlier deadline: it is retried until its own, and released then, not given up at the local one."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=0)
    gcp = FakeReleaser(clock)
    gcp.always = AgentUnavailable("agent: release: 503", status=503)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    preemption, notice = _preemption(world, in_s=90), world.notice("A", in_s=30, ref="H2")
    world.engine.submit(preemption)
    world.engine.submit(notice)
    await world.advance(35.0)  # past the local deadline, GCP's release still failing
    assert [r.refs for r in world.releaser.releases] == [("H2",)]
    gcp.always = None
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED and drain.not_after == notice.not_after
    [released] = gcp.releases
    assert released.refs == ("H1",) and notice.not_after < released.at < preemption.not_after
    assert len(world.releaser.releases) == 1, "local's release is not repeated by gcp's retries"


def _run_with_kill(journal: Path, kill_after: int | None) -> tuple[list[Release], list[Release], float]:
    """Both platforms' notices for A; the controller killed after its `kill_after`-th journal write and started
    again on the same journal (the platforms announce their notices again); each platform's releases."""

    async def scenario() -> tuple[list[Release], list[Release], float]:
        clock = FakeClock()
        host = FakeHost(clock, sockets=100, behaviour="ignore")
        gcp = FakeReleaser(clock)
        store = DyingStore(journal, kill_after) if kill_after is not None else None
        world = _two_platforms(journal, clock, host, gcp, store)
        events = [_preemption(world, in_s=90), world.notice("A", in_s=60, ref="H2")]
        local: list[Release] = []
        try:
            for event in events:
                world.engine.submit(event)
                await world.advance(1.0)
            await world.settle()
        except Killed:
            local.extend(world.releaser.releases)
            world.store.close()
            clock.set(clock.now() + 0.25)
            world = _two_platforms(journal, clock, host, gcp)
            for event in events:
                world.engine.submit(event)
            await world.settle()
        local.extend(world.releaser.releases)
        world.store.close()
        return gcp.releases, local, events[1].not_after

    return asyncio.run(scenario())


def test_a_kill_after_any_journal_write_releases_each_platforms_handle_exactly_once(tmp_path: Path) -> None:
    """issue 9, beyond the eleven: a second platform's handle. Killed after any journal write (the journal says
    which source's handles are released), each platform's handle is released exactly once, by the deadline."""
    _run_with_kill(tmp_path / "count.db", None)
    with SqliteJournal(tmp_path / "count.db") as store:
        writes = len(store.transitions()) - 1  # the first line is written by create(), not record()
    assert writes >= 6
    for kill_after in range(1, writes + 1):
        gcp, local, not_after = _run_with_kill(tmp_path / f"kill-{kill_after}.db", kill_after)
        assert [r.refs for r in gcp] == [("H1",)], f"killed after write {kill_after}: gcp's releases {gcp}"
        assert [r.refs for r in local] == [("H2",)], f"killed after write {kill_after}: local's releases {local}"
        assert all(r.at < not_after for r in [*gcp, *local]), f"killed after write {kill_after}: late"


@async_test
async def test_a_released_handle_echoed_back_by_another_source_starts_no_episode(tmp_path: Path) -> None:
    """Beyond the eleven (found in the box): GCP's release records the MIG's event on the agent as a notice whose id
    is the event's handle, and releases it; the agent pushed that notice back to the controller (source local,
    the same handle, the MIG's deadline). It used to start a new episode: a second drain request to a host that
    was going away, for a deletion already released. Now it is stale."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=0)
    gcp = FakeReleaser(clock)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    world.engine.submit(_preemption(world, in_s=300, ref="100/DELETING/1"))
    await world.settle()
    released = world.engine.get("A")
    assert released is not None and released.phase is Phase.RELEASED

    echo = world.notice("A", in_s=299, ref="100/DELETING/1")
    assert world.engine.submit(echo).disposition is Disposition.STALE
    await world.settle()

    assert [d.id for d in world.engine.history(instance="A")] == [released.id], "no second episode"
    assert len(host.drains) == 1 and [r.refs for r in gcp.releases] == [("100/DELETING/1",)]


async def _drained_by_its_shutdown_notice(tmp_path: Path) -> tuple[World, FakeHost, FakeReleaser]:
    """A (30 sockets) drained and released for the agent's shutdown notice; the GCP releaser beside it."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=30)
    gcp = FakeReleaser(clock)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    world.engine.submit(world.notice("A", in_s=85, ref="shutdown/1"))
    await world.settle()
    return world, host, gcp


@async_test
async def test_a_platforms_handle_after_its_host_was_drained_and_released_is_released_without_a_drain(
    tmp_path: Path,
) -> None:
    """Beyond the eleven (found in the box): a MIG deletion is two notices, the agent's shutdown hold (pushed at
    once) and the MIG's DELETING seen by the GCP source's next poll, with a handle of its own. When the first
    episode had drained and released the host before the poll, the second asked the host to drain again (and, with
    the VM gone, would hold a budget slot retrying it). Now the host is counted first, with no budget slot: at
    zero the handle is released with no drain request; the journal says which episode drained the host."""
    world, host, gcp = await _drained_by_its_shutdown_notice(tmp_path)
    first = world.engine.get("A")
    assert first is not None and first.phase is Phase.RELEASED and len(host.drains) == 1

    deleting = _preemption(world, in_s=300, ref="100/DELETING/1")
    assert world.engine.submit(deleting).disposition is Disposition.STARTED
    await world.settle()

    second = world.engine.get("A")
    assert second is not None and second.id != first.id and second.phase is Phase.RELEASED
    assert len(host.drains) == 1, "no second drain request to a host its first episode drained"
    assert [r.refs for r in gcp.releases] == [("100/DELETING/1",)], "the MIG's handle released once"
    steps = [t.step for t in world.engine.journal(second.id)]
    assert "drained before" in steps and "drain requested" not in steps, steps


@async_test
async def test_a_late_handle_of_a_host_that_went_away_after_its_drain_is_settled_without_a_slot(
    tmp_path: Path,
) -> None:
    """The same, but the poll came after the guest's shutdown went on and its agent stopped (found in the box):
    the usual path sent a drain, then resets, to a host that was gone, holding the pool's only budget slot for
    4.5 min. Now the episode goes to drained (no slot) and only its release is retried; the next instance's
    drain does not wait. An agent that answers again gets the release (the platform still waits for it)."""
    clock = FakeClock()
    host, other = FakeHost(clock, sockets=30), FakeHost(clock, sockets=10)
    gcp = FakeReleaser(clock)
    gcp.failures = [AgentUnavailable("agent: release: unreachable", status=0) for _ in range(3)]
    world = make_world(tmp_path / "journal.db", hosts={"A": host, "B": other}, clock=clock,
                       more_releasers={"gcp": gcp}, slots=1)
    world.engine.submit(world.notice("A", in_s=85, ref="shutdown/1"))
    await world.settle()
    host.behaviour = "unreachable"  # the VM went on with its shutdown

    polled_at = clock.now()
    world.engine.submit(_preemption(world, in_s=300, ref="100/DELETING/1"))
    world.engine.submit(world.notice("B", in_s=85, ref="shutdown/2"))
    await world.advance(1.0)
    late = world.engine.get("A")
    assert late is not None and late.phase is Phase.DRAINED, "no slot held: only the release is retried"
    assert other.drains and other.drains[0][0] - polled_at < 0.5, "B's drain did not wait for a slot"
    await world.settle()

    late = world.engine.get("A")
    assert late is not None and late.phase is Phase.RELEASED
    assert len(host.drains) == 1 and host.resets == [], "no drain, no reset of a host let go"
    assert [r.refs for r in gcp.releases] == [("100/DELETING/1",)] and gcp.attempts == 4, "released once, retried"
    assert "drained before" in [t.step for t in world.engine.journal(late.id)]


@async_test
async def test_a_host_drained_before_that_has_sockets_again_is_drained_again(tmp_path: Path) -> None:
    """The same, but the host took connections again after its first episode (its app restarted): the count
    first shows them, and the episode drains as usual before it releases the new handle."""
    world, host, _ = await _drained_by_its_shutdown_notice(tmp_path)
    host.refill(12)

    world.engine.submit(_preemption(world, in_s=300, ref="100/DELETING/1"))
    await world.settle()

    second = world.engine.get("A")
    assert second is not None and second.phase is Phase.RELEASED and second.sockets_last == 0
    assert len(host.drains) == 2, "drained again: it had sockets"
    assert "drained before" not in [t.step for t in world.engine.journal(second.id)]


@async_test
async def test_an_echo_of_a_handle_the_running_episode_holds_is_merged_without_a_second_release(
    tmp_path: Path,
) -> None:
    """The echo of the test above, while its episode still runs (found in the box): the agent's push of the notice
    GCP's release recorded came in during that release and joined the episode as the notices platform's handle,
    released a second time through the agent. The episode keeps one handle, GCP's."""
    clock = FakeClock()
    host = FakeHost(clock, sockets=200, behaviour="ignore")
    gcp = FakeReleaser(clock)
    world = _two_platforms(tmp_path / "journal.db", clock, host, gcp)
    world.engine.submit(_preemption(world, in_s=300, ref="100/DELETING/1"))
    await world.advance(1.0)
    assert world.engine.submit(world.notice("A", in_s=299, ref="100/DELETING/1")).disposition is Disposition.MERGED
    await world.settle()

    drain = world.engine.get("A")
    assert drain is not None and drain.phase is Phase.RELEASED
    assert [(r.source, r.handle) for r in drain.refs] == [("gcp", "100/DELETING/1")]
    assert [r.refs for r in gcp.releases] == [("100/DELETING/1",)] and world.releaser.releases == []
