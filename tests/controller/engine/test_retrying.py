"""Issue 9, the boundaries: an agent's temporary failures are retried, and a reset is checked by a recount.

The host here is a real `AgentClient` over `httpx.MockTransport`, in front of a `FakeHost` that answers the agent's
wire protocol, so what is tested is the client's classification of statuses and the engine's retries together,
on a fake clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from controller.core.models import Outcome, Phase
from controller.hosts.client import AgentClient
from controller.platforms.notices.releasing import AgentNoticeRelease
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world
from tests.support.tasks import async_test

TOKEN = "test-token"


@dataclass
class WireAgent:
    """A node agent on the wire in front of `host`; `unavailable`: how many of the next calls of a path answer
    503 (the agent's own temporary failure: `ss` timed out, IMDS answered 5xx)."""

    host: FakeHost
    unavailable: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[float, str, int]] = field(default_factory=list)
    """(time, path, status) of every call."""
    released: list[tuple[float, int]] = field(default_factory=list)
    """(time, kernel count) of every release that succeeded."""

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        response = await self._answer(request, path)
        self.calls.append((self.host.clock.now(), path, response.status_code))
        return response

    async def _answer(self, request: httpx.Request, path: str) -> httpx.Response:
        key = "release" if path.endswith("/release") else path
        if self.unavailable.get(key, 0) > 0:
            self.unavailable[key] -= 1
            return httpx.Response(503, json={"error": "ss did not answer in 2 s"}, headers={"Retry-After": "1"})
        if path == "/v1/drain":
            await self.host.drain(json.loads(request.content)["rate_per_s"])
            return httpx.Response(202, json={"accepted": True, "app": {}})
        if path == "/v1/connections":
            return httpx.Response(200, json={"port": 8080, "established": await self.host.connections()})
        if path == "/v1/reset":
            return httpx.Response(200, json={"port": 8080, "reset": await self.host.reset()})
        self.released.append((self.host.clock.now(), self.host.remaining()))
        notice_id = path.split("/")[3]
        return httpx.Response(200, json={"id": notice_id, "kind": "terminate", "not_after": 0, "state": "released"})

    def client(self) -> AgentClient:
        return AgentClient("http://agent.test:9100", TOKEN, transport=httpx.MockTransport(self.handle))


@dataclass
class StubbornHost(FakeHost):
    """`ss -K` cannot destroy every socket: each reset leaves the next of `survivors` open, and exits 0."""

    survivors: list[int] = field(default_factory=list)

    async def reset(self) -> int:
        before = self.remaining()
        await super().reset()
        left = self.survivors.pop(0) if self.survivors else 0
        self.sockets = left
        return before - left


@async_test
async def test_an_agent_answering_503_to_reset_and_release_is_still_reset_and_released_in_time(
    tmp_path: Path,
) -> None:
    """issue 9, case 2: an agent that answers 503 (its own temporary failure) to the first drain, the first reset
    and the first release still gets its sockets reset and its notice released, at a zero count, before the
    deadline; the drain request is not sent again."""
    clock = FakeClock()
    agent = WireAgent(FakeHost(clock, sockets=50, behaviour="ignore"),
                      unavailable={"/v1/drain": 1, "/v1/reset": 1, "release": 1})
    client = agent.client()
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": client},  # type: ignore[dict-item]
                       releaser=AgentNoticeRelease({"A": client}))  # type: ignore[arg-type]
    try:
        event = world.notice("A", in_s=60)
        world.engine.submit(event)
        await world.settle()
    finally:
        await client.aclose()

    drain = world.engine.get("A")
    assert drain is not None
    assert (drain.phase, drain.outcome) == (Phase.RELEASED, Outcome.FORCED), drain.reason
    assert drain.sockets_reset == 50 and agent.host.remaining() == 0
    assert len(agent.released) == 1
    released_at, count_at_release = agent.released[0]
    assert count_at_release == 0 and released_at < event.not_after
    assert [path for _, path, _ in agent.calls].count("/v1/drain") == 1


@async_test
async def test_sockets_a_reset_did_not_destroy_are_counted_reset_again_and_reported(tmp_path: Path) -> None:
    """issue 9, case 9: `ss -K` may skip sockets and exit 0; the kernel counts again after a reset, what is left
    is reset again, and the platform is released only at a zero count (the journal says how many were left)."""
    clock = FakeClock()
    agent = WireAgent(StubbornHost(clock, sockets=40, behaviour="ignore", survivors=[3, 1]))
    client = agent.client()
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": client},  # type: ignore[dict-item]
                       releaser=AgentNoticeRelease({"A": client}))  # type: ignore[arg-type]
    try:
        event = world.notice("A", in_s=60)
        world.engine.submit(event)
        await world.settle()
    finally:
        await client.aclose()

    drain = world.engine.get("A")
    assert drain is not None
    assert (drain.phase, drain.outcome, drain.sockets_last) == (Phase.RELEASED, Outcome.FORCED, 0), drain.reason
    assert [count for _, count in agent.released] == [0]
    assert agent.released[0][0] < event.not_after
    assert [path for _, path, _ in agent.calls].count("/v1/reset") == 3
    assert drain.sockets_reset == 40
    assert world.steps("A").count("forcing:sockets left after reset") == 2


@async_test
async def test_sockets_that_never_go_are_reset_until_the_release_deadline_then_released_as_failed(
    tmp_path: Path,
) -> None:
    """issue 9, case 9: sockets a reset can never destroy are reset again until the release deadline (not
    released early at a count above zero), then the episode fails with its last count and is released in time."""
    clock = FakeClock()
    agent = WireAgent(StubbornHost(clock, sockets=40, behaviour="ignore", survivors=[2] * 1000))
    client = agent.client()
    world = make_world(tmp_path / "j.db", clock=clock, hosts={"A": client},  # type: ignore[dict-item]
                       releaser=AgentNoticeRelease({"A": client}))  # type: ignore[arg-type]
    try:
        event = world.notice("A", in_s=60)
        world.engine.submit(event)
        await world.settle()
    finally:
        await client.aclose()

    drain = world.engine.get("A")
    assert drain is not None and drain.release_by is not None
    assert drain.outcome is Outcome.FAILED and drain.sockets_last == 2
    assert "kernel 2" in (drain.reason or "")
    assert len(agent.released) == 1
    released_at, _ = agent.released[0]
    assert drain.release_by <= released_at < event.not_after
    resets = [at for at, path, _ in agent.calls if path == "/v1/reset"]
    assert len(resets) > 2 and resets[-1] < drain.release_by
