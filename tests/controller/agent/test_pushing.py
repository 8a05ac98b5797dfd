"""The agent's push of a new notice, against a real HTTP controller fake on loopback: a dead first address is
skipped for the second, a standby's pointer to the leader is followed once, a controller that answers 503 is
tried again with backoff until it takes the notice, and a push that is refused everywhere gives up."""

from __future__ import annotations

import socket
import time

from aiohttp import web

from controller.agent.notices import Notice
from controller.agent.pushing import Pusher
from controller.core.clocks import SystemClock
from tests.support.serving import serving
from tests.support.tasks import async_test

PUSH = "push-token"


class FakeController:
    """Answers `POST /v1/pushes`: `failures` times 503 first, then 202; or always what `standby` says."""

    def __init__(self, *, failures: int = 0, leader: str | None = None, status: int = 202) -> None:
        self.failures, self.leader, self.status = failures, leader, status
        self.pushes: list[dict[str, object]] = []

    async def push(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {PUSH}":
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        if self.leader is not None:
            return web.json_response({"error": "standby", "leader_url": self.leader}, status=421)
        if self.failures > 0:
            self.failures -= 1
            return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "0"})
        self.pushes.append(body)
        return web.json_response({"disposition": "started", "drain_id": 1}, status=self.status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/pushes", self.push)
        return app


def _notice() -> Notice:
    return Notice(id="n1", kind="terminate", not_after=time.time() + 60, seen_at=time.time())


def _pusher(*controllers: str) -> Pusher:
    return Pusher(controllers, PUSH, instance="vm-7", agent_url="http://10.0.0.7:9100", pool="api",
                  clock=SystemClock(), retry_initial_s=0.05, retry_max_s=0.2, timeout_s=5)


def _unused_url() -> str:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


@async_test
async def test_a_dead_first_address_is_skipped_for_the_second() -> None:
    fake = FakeController()
    async with serving(fake.app()) as url:
        pusher = _pusher(_unused_url(), url)
        answer = await pusher.push(_notice())
        await pusher.aclose()
    assert answer is not None and answer.disposition == "started"
    [pushed] = fake.pushes
    assert (pushed["instance"], pushed["agent_url"], pushed["pool"]) == ("vm-7", "http://10.0.0.7:9100", "api")


@async_test
async def test_a_standby_pointing_at_the_leader_is_followed_once() -> None:
    leader = FakeController()
    async with serving(leader.app()) as leader_url:
        standby = FakeController(leader=leader_url)
        async with serving(standby.app()) as standby_url:
            pusher = _pusher(standby_url)
            answer = await pusher.push(_notice())
            await pusher.aclose()
    assert answer is not None and len(leader.pushes) == 1 and standby.pushes == []


@async_test
async def test_a_busy_controller_is_tried_again_until_it_takes_the_notice() -> None:
    fake = FakeController(failures=3)
    async with serving(fake.app()) as url:
        pusher = _pusher(url)
        answer = await pusher.push(_notice())
        await pusher.aclose()
    assert answer is not None and fake.failures == 0 and len(fake.pushes) == 1


@async_test
async def test_a_push_refused_by_every_controller_is_given_up() -> None:
    fake = FakeController()
    async with serving(fake.app()) as url:
        pusher = Pusher([url], "wrong-token", instance="vm-7", agent_url="http://10.0.0.7:9100",
                        clock=SystemClock(), retry_initial_s=0.05)
        assert await pusher.push(_notice()) is None
        await pusher.aclose()
    assert fake.pushes == []
