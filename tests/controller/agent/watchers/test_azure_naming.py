"""issue 12: on Azure the agent matches Scheduled Events by the VM's Azure name (`<scale set>_<instance id>`),
which it asks IMDS for at start when `resource_name` is not configured: an event for this VM is taken, one that
names only its host name (the computer name) is not, and an unusable answer is asked again. Against the
wire-level fake IMDS on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from controller.agent.watchers.azure import ScheduledEventsClient, ScheduledEventsWatcher
from controller.agent.watchers.common import WatchMetrics
from tests.fakes.azure_imds import FakeImds
from tests.fakes.threaded import Handle, serve
from tests.support import until
from tests.support.tasks import async_test


class Notices:
    """What the watcher hands the agent: the notices it opens."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def add_notice(self, notice_id: str, kind: str, not_after: float, *, source: str = "api",
                   grace_s: float | None = None) -> tuple[object, bool]:
        self.ids.append(notice_id)
        return object(), True


@pytest.fixture
def imds() -> Iterator[Handle[FakeImds]]:
    with serve(FakeImds(name="api-centralus-vmss_3", computer_name="api000003"), name="fake-imds") as fake:
        yield fake


async def _watch(imds: Handle[FakeImds], notices: Notices) -> asyncio.Task[None]:
    client = ScheduledEventsClient(imds.url, timeout_s=2.0)
    watcher = ScheduledEventsWatcher(
        client, notices, resource_name=None, fallback_name="api000003",
        metrics=WatchMetrics(CollectorRegistry()).of("azure"), poll_s=0.1, retry_max_s=0.5,
    )
    return asyncio.get_running_loop().create_task(watcher.run())


@async_test
async def test_without_resource_name_the_agent_takes_the_events_for_its_azure_name(imds: Handle[FakeImds]) -> None:
    notices = Notices()
    task = await _watch(imds, notices)
    try:
        by_host_name = imds.schedule("Terminate", ["api000003"], not_before_s=300)
        mine = imds.schedule("Terminate", ["api-centralus-vmss_3"], not_before_s=300)
        await until(lambda: mine in notices.ids, what="the notice of the event naming this VM's Azure name")
    finally:
        task.cancel()
    assert by_host_name not in notices.ids, "the computer name is not the name Scheduled Events use"


@async_test
async def test_an_unusable_instance_metadata_answer_is_asked_again(
    imds: Handle[FakeImds], caplog: pytest.LogCaptureFixture
) -> None:
    imds.call(lambda fake: fake.compute.update(name=""))  # IMDS answering without a name: malformed, temporary
    notices = Notices()
    task = await _watch(imds, notices)
    try:
        mine = imds.schedule("Terminate", ["api-centralus-vmss_3"], not_before_s=300)
        await until(lambda: "cannot read this VM's name" in caplog.text, what="the watcher's warning")
        assert imds.polls == [], "no events are matched before the VM's name is known"
        imds.call(lambda fake: fake.compute.update(name="api-centralus-vmss_3"))
        await until(lambda: mine in notices.ids, what="the notice, once IMDS names the VM")
    finally:
        task.cancel()
