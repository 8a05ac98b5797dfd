"""The Kubernetes hold and release (`hold: finalizer`) against the fake API server.

Our finalizer goes on every ready pod (and only there), other controllers' finalizers are never lost
(every patch carries the resourceVersion read; a 409 means read again), the release removes only ours and only
from the pod of the drain, and a pod held long past its deadline is let go.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from controller.core.models import Drain, EventKind, Ref
from controller.platforms.kubernetes.api import Conflict, KubernetesApi, Refused
from controller.platforms.kubernetes.finalizers import FinalizerHold, FinalizerRelease, edit_finalizers
from tests.controller.platforms.kubernetes.support import FINALIZER, Watching, api_for, watching
from tests.fakes.kubernetes import Handle, serve
from tests.support import running, until
from tests.support.tasks import async_test

KEEP = "example.com/keep"


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        yield handle


def finalizers(fake: Handle, name: str) -> list[str] | None:
    pod = fake.pod(name)
    return None if pod is None else list(pod["metadata"].get("finalizers") or [])


def patches(fake: Handle, name: str) -> list[int]:
    return [r.status for r in fake.requests_where("PATCH", f"/pods/{name}")]


def drain_of(instance: str, uid: str) -> Drain:
    return Drain(id=1, instance=instance, pool="kubernetes", source="kubernetes", kind=EventKind.TERMINATE,
                 event_id="e", not_after=time.time() + 60, rate_per_s=100.0, drain_deadline_s=20.0,
                 needs_release=True, refs=(Ref("kubernetes", uid),))


@contextlib.asynccontextmanager
async def holding(fake: Handle, **options: float) -> AsyncIterator[tuple[Watching, FinalizerHold]]:
    """The source filling the pod directory and the hold acting on it, both running until the block ends."""
    async with watching(fake) as seen:
        api = api_for(fake, "drainctl/hold")
        hold = FinalizerHold(api, seen.pods, namespace="default", finalizer=FINALIZER, retry_s=0.1, **options)
        try:
            async with running(hold.run()):
                yield seen, hold
        finally:
            api.close()


@async_test
async def test_ready_pods_get_our_finalizer_next_to_the_others_and_unready_or_deleted_pods_do_not(
    fake: Handle,
) -> None:
    fake.add_pod("a", finalizers=[KEEP])
    fake.add_pod("b", ready=False)
    fake.add_pod("c")
    fake.delete_pod("c", grace_s=60)
    async with holding(fake):
        await until(lambda: finalizers(fake, "a") == [KEEP, FINALIZER], what="pod a to be held")
        fake.set_ready("b", True)
        await until(lambda: finalizers(fake, "b") == [FINALIZER], what="pod b to be held once ready")
        assert finalizers(fake, "c") == [], "no finalizer may be added to a pod being deleted"
        assert patches(fake, "c") == []
        assert patches(fake, "a") == [200]


@async_test
async def test_a_write_racing_with_ours_is_not_lost_the_patch_is_retried_on_a_fresh_read(fake: Handle) -> None:
    pod = fake.add_pod("a")
    fake.after_next_read("a", lambda f: f.add_finalizer("a", KEEP))
    api = api_for(fake)
    try:
        assert await edit_finalizers(api, "default", "a", pod["metadata"]["uid"], FINALIZER, add=True)
    finally:
        api.close()
    assert patches(fake, "a") == [409, 200]
    assert finalizers(fake, "a") == [KEEP, FINALIZER]


@async_test
async def test_the_fake_and_the_client_honour_resource_versions_and_the_no_new_finalizers_rule(fake: Handle) -> None:
    pod = fake.add_pod("a")
    fake.add_finalizer("a", KEEP)  # moves the resourceVersion on
    api: KubernetesApi = api_for(fake)
    try:
        stale = {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"], "finalizers": [FINALIZER]}}
        with pytest.raises(Conflict):
            await api.patch_pod("default", "a", stale)
        fake.delete_pod("a", grace_s=60)
        with pytest.raises(Refused, match="422"):
            await api.patch_pod("default", "a", {"metadata": {"finalizers": [KEEP, FINALIZER]}})
    finally:
        api.close()
    assert finalizers(fake, "a") == [KEEP]


@async_test
async def test_release_removes_only_our_finalizer_and_only_from_the_pod_of_the_drain(fake: Handle) -> None:
    a = fake.add_pod("a", finalizers=[KEEP, FINALIZER])
    old_b = fake.add_pod("b", finalizers=[FINALIZER])
    fake.call(lambda f: f.pods.pop(("default", "b")))
    fake.add_pod("b", finalizers=[FINALIZER])  # a new pod took the name (StatefulSet-style)
    fake.delete_pod("a", grace_s=60)
    api = api_for(fake)
    release = FinalizerRelease(api, namespace="default", finalizer=FINALIZER)
    try:
        await release.release(drain_of("a", a["metadata"]["uid"]), (a["metadata"]["uid"],))
        await release.release(drain_of("b", old_b["metadata"]["uid"]), (old_b["metadata"]["uid"],))
        await release.release(drain_of("gone", "no-such-uid"), ("no-such-uid",))
        await release.release(drain_of("a", a["metadata"]["uid"]), (a["metadata"]["uid"],))  # idempotent
    finally:
        api.close()
    assert finalizers(fake, "a") == [KEEP]
    assert finalizers(fake, "b") == [FINALIZER], "another pod by the same name is not ours to release"
    assert patches(fake, "a") == [200] and patches(fake, "b") == []


@async_test
async def test_a_pod_still_held_long_after_its_deadline_is_let_go(
    fake: Handle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="drainctl.platforms.kubernetes.finalizers")
    fake.add_pod("d", finalizers=[FINALIZER])
    fake.delete_pod("d", grace_s=1)
    fake.kubelet_done("d")  # the containers are gone; only our finalizer holds the pod object
    def logged() -> bool:
        return any("after its deadline" in r.getMessage() for r in caplog.records)

    async with holding(fake, overdue_s=0.5, idle_s=0.2):
        # The pod vanishes as soon as the fake applies the patch, a moment before the hold logs why: wait for both.
        await until(lambda: fake.pod("d") is None and logged(), what="the overdue pod to be let go, logged, removed")
