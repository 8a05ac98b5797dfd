"""`hold: prestop`'s release against a real node agent's routes (in process, on loopback): the controller's
release and the pod's preStop hold meet on one notice, whichever comes first."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestServer

from controller.agent.holding import hold
from controller.agent.routes import build_app
from controller.hosts.client import AgentClient
from controller.platforms.kubernetes.api import Pod
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.pods import PodsNotListed, PreStopRelease
from tests.controller.agent.test_fallback_timing import START_S, host
from tests.support.tasks import async_test

TOKEN = "pod-agent-token"
UID = "0b1c2d3e-pod-uid"


class OnePod:
    """The fleet as `PreStopRelease` sees it, for one pod whose agent is `client`."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client

    def host(self, instance: str) -> AgentClient:
        return self.client


def watched(*names: str) -> PodDirectory:
    """The pod directory after a list that had `names` (default: api-a)."""
    pods = PodDirectory()
    pods.replace_all(Pod(name, "default", UID, "1", "127.0.0.2", "Running", True, None, None, ())
                     for name in names or ("api-a",))
    return pods


@async_test
async def test_a_release_before_the_prestop_hook_opened_its_notice_lets_the_hook_return_at_once() -> None:
    """issue 9, case 6: the controller releases before the pod's preStop hook has opened its notice (404); that
    is not a release: the hook that opens the notice a moment later must find it released and return at once,
    not be held for its whole window."""
    pod = host(0)
    server = TestServer(build_app(pod.agent, TOKEN))
    await server.start_server()
    client = AgentClient(str(server.make_url("")), TOKEN)
    try:
        drain = SimpleNamespace(instance="api-a", not_after=START_S + 60)
        await PreStopRelease(OnePod(client), watched()).release(drain, (UID,))  # type: ignore[arg-type]

        result = await hold(pod.agent, window_s=60, clock=pod.clock, notice_id=UID)
    finally:
        await client.aclose()
        await server.close()

    assert result.outcome == "released" and result.held_s == 0.0
    notice = pod.agent.book.get(UID)
    assert notice is not None and notice.released_by == "controller"


@async_test
async def test_a_release_after_the_hook_opened_its_notice_releases_that_notice() -> None:
    """issue 9, case 6 (the usual order, unchanged): the hook's notice is open, the release releases it."""
    pod = host(0)
    pod.agent.add_notice(UID, "terminate", START_S + 60, source="prestop")
    server = TestServer(build_app(pod.agent, TOKEN))
    await server.start_server()
    client = AgentClient(str(server.make_url("")), TOKEN)
    try:
        drain = SimpleNamespace(instance="api-a", not_after=START_S + 60)
        await PreStopRelease(OnePod(client), watched()).release(drain, (UID,))  # type: ignore[arg-type]
    finally:
        await client.aclose()
        await server.close()

    notice = pod.agent.book.get(UID)
    assert notice is not None and notice.state == "released" and notice.source == "prestop"


@async_test
async def test_a_pod_no_longer_watched_has_no_hook_to_release_and_before_the_first_list_the_release_waits() -> None:
    """The pod is gone (its containers with it): the release is done without calling any agent. Before the
    first list (a controller that just took over) nobody can tell: a temporary error, retried."""
    class NoAgent:
        def host(self, instance: str) -> AgentClient:
            raise AssertionError(f"no agent call for {instance}")

    drain = SimpleNamespace(instance="api-a", not_after=START_S + 60)
    await PreStopRelease(NoAgent(), watched("api-b")).release(drain, (UID,))  # type: ignore[arg-type]
    with pytest.raises(PodsNotListed):
        await PreStopRelease(NoAgent(), PodDirectory()).release(drain, (UID,))  # type: ignore[arg-type]
