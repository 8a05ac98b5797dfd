"""The Kubernetes source against a wire-level fake API server: list+watch, bookmarks, 410 Gone, faults.

Every test runs the real source (the `kubernetes` client in threads, real HTTP on loopback) against
`tests/fakes/kubernetes.py` and waits for what it emits; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from controller.core.models import EventKind
from controller.core.source_metrics import SourceMetrics
from controller.platforms.kubernetes import api as kubernetes_client
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.watching import KubernetesSource
from tests.controller.platforms.kubernetes.support import FINALIZER, api_for, watching
from tests.fakes.kubernetes import Handle, serve
from tests.support import until
from tests.support.tasks import async_test


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        for name in ("a", "b", "c"):
            handle.add_pod(name, ip=f"10.0.0.{ord(name) - 96}")
        handle.add_pod("other", labels={"app": "db"})
        yield handle


def _deletion_at(pod: dict[str, object]) -> float:
    meta = pod["metadata"]
    assert isinstance(meta, dict)
    return datetime.fromisoformat(meta["deletionTimestamp"]).timestamp()


@async_test
async def test_a_deleted_pod_becomes_one_event_whose_deadline_is_its_deletion_timestamp(fake: Handle) -> None:
    async with watching(fake) as seen:
        await until(lambda: len(seen.pods) == 3, what="the three api pods to be listed")
        assert seen.pods.get("other") is None, "the label selector must keep other pods out"
        assert seen.pods.get("b") is not None and seen.pods.get("b").ip == "10.0.0.2"  # type: ignore[union-attr]

        before = time.time()
        deleted = fake.delete_pod("b", grace_s=45)
        [event] = await until(lambda: seen.events, what="the event of pod b")
        assert (event.instance, event.kind, event.source) == ("b", EventKind.TERMINATE, "kubernetes")
        assert event.ref == deleted["metadata"]["uid"]
        assert event.not_after == _deletion_at(deleted), "the deletionTimestamp already includes the grace period"
        assert before + 44 <= event.not_after <= time.time() + 46

        fake.set_ready("b", False)  # the same deletion seen again (the endpoints controller marks it unready)
        fake.delete_pod("b", grace_s=10)  # a second delete with a shorter grace period moves the deadline closer
        await until(lambda: len(seen.events) == 2, what="the tightened deadline of pod b")
        assert seen.events[1].not_after < event.not_after and seen.events[1].id != event.id
        assert seen.metric("drainctl_source_events_total") == 2
        assert seen.metric("drainctl_source_last_success_timestamp_seconds") >= before


@async_test
async def test_the_same_deletion_seen_by_two_sources_has_the_same_event_id(fake: Handle) -> None:
    fake.delete_pod("a", grace_s=60)
    async with watching(fake) as one, watching(fake) as two:
        await until(lambda: one.events and two.events, what="both sources to see pod a")
        assert one.events[0].id == two.events[0].id


@pytest.mark.parametrize("mode", ["event", "http"])
@async_test
async def test_a_watch_ending_in_410_gone_is_followed_by_a_relist_that_loses_and_doubles_nothing(
    fake: Handle, mode: str
) -> None:
    async with watching(fake) as seen:
        fake.delete_pod("a", grace_s=60)
        await until(lambda: seen.instances() == ["a"], what="the event of pod a")
        lists_before = len(fake.requests_where("GET", "/pods"))

        def gap(f: object) -> None:  # in one step on the fake: the watch expires, then b is deleted, c vanishes
            f.expire_watches(mode)  # type: ignore[attr-defined]
            f.delete_pod("b", grace_s=60)  # type: ignore[attr-defined]
            f.delete_pod("c", grace_s=0)  # type: ignore[attr-defined]

        fake.call(gap)
        await until(lambda: "b" in seen.instances(), what="the relist to find pod b being deleted")
        await until(lambda: seen.pods.get("c") is None, what="pod c, gone during the gap, to leave the inventory")
        assert seen.instances() == ["a", "b"], "a must not be emitted again, b must not be lost"
        relists = [r for r in fake.requests[lists_before:] if r.method == "GET" and "watch" not in r.query]
        assert len(relists) == 1
        assert seen.metric("drainctl_source_errors_total", kind="gone") == 1

        fake.delete_pod("a", grace_s=5)  # and the watch that follows the relist works
        await until(lambda: seen.instances() == ["a", "b", "a"], what="the watch after the relist")


@async_test
async def test_bookmarks_move_the_resource_version_so_a_resumed_watch_needs_no_relist(fake: Handle) -> None:
    async with watching(fake) as seen:
        await until(lambda: seen.source.resource_version is not None and fake.open_watches(), what="the watch to start")
        for _ in range(3):
            fake.bump()  # writes elsewhere in the cluster
        fake.bookmark()
        latest = str(fake.rv)
        await until(lambda: seen.source.resource_version == latest, what="the bookmark's resourceVersion")

        fake.call(lambda f: setattr(f, "compacted", f.rv))  # history before the bookmark is compacted away
        fake.end_watches()  # the watch ends normally (its timeoutSeconds)
        await until(lambda: len(fake.requests_where("GET", "/pods")) >= 3 and fake.open_watches(),
                    what="the watch to be resumed")
        fake.delete_pod("c", grace_s=30)
        await until(lambda: seen.instances() == ["c"], what="the event of pod c on the resumed watch")
        watches = [r for r in fake.requests if "watch" in r.query]
        assert [r.query["resourceVersion"] for r in watches][-1] == latest
        assert len([r for r in fake.requests if "watch" not in r.query]) == 1, "no relist was needed"
        assert all(r.query.get("allowWatchBookmarks") == "true" for r in watches)


@async_test
async def test_malformed_json_unknown_event_types_and_500s_are_logged_and_survived(
    fake: Handle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drainctl.platforms.kubernetes.watching")
    fake.malformed_next(1, match="limit=")  # the first list is not JSON
    async with watching(fake) as seen:
        await until(lambda: fake.open_watches(), what="the watch to start after the malformed list")
        fake.inject_line("{this is not json")
        fake.inject_line('{"type": "SURPRISE", "object": {}}')
        fake.inject_line('{"type": "MODIFIED", "object": {"metadata": {"name": "x"}}}')
        fake.fail_next(2, 500, match="watch=true")
        fake.end_watches()  # the next two watch requests get a 500
        fake.delete_pod("a", grace_s=30)
        await until(lambda: seen.instances() == ["a"], what="the event of pod a after all the faults")

        assert seen.metric("drainctl_source_errors_total", kind="malformed") == 3
        assert seen.metric("drainctl_source_errors_total", kind="unknown_event") == 1
        assert seen.metric("drainctl_source_errors_total", kind="unavailable") == 2
        assert seen.metric("drainctl_source_polls_total") >= 5
        messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("malformed watch line" in m for m in messages)
        assert any("unknown type 'SURPRISE'" in m for m in messages)
        assert any("HTTP 500" in m for m in messages)
        assert any("not JSON" in m for m in messages)


@async_test
async def test_an_unreachable_api_server_is_retried_until_it_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="drainctl.platforms.kubernetes.watching")
    with serve() as fake:
        fake.add_pod("a")
        fake.fail_next(3, 503, match="pods", retry_after="0")
        async with watching(fake) as seen:
            await until(lambda: len(seen.pods) == 1, what="the list once the API server answers")
            assert seen.metric("drainctl_source_errors_total", kind="unavailable") == 3
            assert any("HTTP 503" in r.getMessage() for r in caplog.records)


@async_test
async def test_pods_that_never_ran_need_no_drain_unless_they_carry_our_finalizer() -> None:
    with serve() as fake:
        fake.add_pod("pending", ip=None, ready=False, phase="Pending")
        fake.add_pod("held", ip=None, ready=False, phase="Pending", finalizers=[FINALIZER])
        fake.add_pod("running")
        async with watching(fake) as seen:
            await until(lambda: len(seen.pods) == 3, what="the pods to be listed")
            for name in ("pending", "held", "running"):
                fake.delete_pod(name, grace_s=30)
            await until(lambda: "running" in seen.instances(), what="the event of the last pod deleted")
            assert sorted(seen.instances()) == ["held", "running"]


@async_test
async def test_a_long_list_is_read_page_by_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes_client, "LIST_PAGE_SIZE", 2)
    with serve() as fake:
        for index in range(7):
            fake.add_pod(f"p{index}")
        fake.delete_pod("p5", grace_s=30)
        async with watching(fake) as seen:
            await until(lambda: seen.events, what="the event of p5 from the last pages")
            assert len(seen.pods) == 7
            pages = [r for r in fake.requests if "watch" not in r.query]
            assert len(pages) == 4 and all(r.query["limit"] == "2" for r in pages)
            assert seen.instances() == ["p5"]


@async_test
async def test_a_stopped_source_leaves_no_watch_connection_behind(fake: Handle) -> None:
    api = api_for(fake)  # stays open: a replica that stops leading keeps its client
    source = KubernetesSource(api, PodDirectory(), namespace="default", label_selector="app=api",
                              finalizer=FINALIZER, metrics=SourceMetrics().of("kubernetes"))
    task = asyncio.create_task(anext(source.watch()))
    try:
        await until(lambda: fake.open_watches() == 1, what="the watch to start")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

        await until(lambda: fake.open_watches() == 0, what="the watch connection to be closed")
    finally:
        api.close()
