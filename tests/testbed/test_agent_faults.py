"""The testbed's fault switch over the agent's real routes, read by the controller's real client (in process, on
loopback): the first reset and release get the agent's own 503 with Retry-After, a temporary error the
controller retries after that delay; the next ones act (issue 9, case 2)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer

from controller.agent.routes import build_app
from controller.hosts.client import AgentClient, AgentUnavailable
from testbed.agent_faults import FAULT_DELAY_S, FirstFailures
from tests.controller.agent.test_fallback_timing import START_S, host
from tests.support.tasks import async_test

TOKEN = "faulty-agent-token"


@async_test
async def test_first_reset_and_release_get_503_with_retry_after_then_act() -> None:
    pod = host(3)
    notice, _ = pod.agent.add_notice("n1", "terminate", START_S + 60)
    app = build_app(pod.agent, TOKEN)
    app.middlewares.append(FirstFailures(resets=1, releases=1).middleware())
    server = TestServer(app)
    await server.start_server()
    client = AgentClient(str(server.make_url("")), TOKEN)
    try:
        with pytest.raises(AgentUnavailable) as refused_reset:
            await client.reset()
        with pytest.raises(AgentUnavailable) as refused_release:
            await client.release("n1")
        assert pod.kernel.resets == [] and notice.state == "open", "a refused call did nothing"
        assert await client.reset() == 3
        await client.release("n1")
    finally:
        await client.aclose()
        await server.close()

    for refused in (refused_reset.value, refused_release.value):
        assert refused.status == 503 and refused.delay_s == FAULT_DELAY_S, "the agent's Retry-After was read"
    assert notice.state == "released" and notice.released_by == "controller"
