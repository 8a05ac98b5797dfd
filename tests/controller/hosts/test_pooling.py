"""One shared client for every agent: many agents' calls never put more than `max_in_flight` requests on the
wire at once, and every call still completes (it waits for a place, it does not fail)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from controller.hosts.client import AgentClient
from controller.hosts.pooling import AgentPool
from tests.support import until
from tests.support.serving import serving
from tests.support.tasks import async_test

TOKEN = "agent-token"


class Agents:
    """Many fake agents on one port (one path prefix each) that hold every count until let go."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.go = asyncio.Event()

    async def connections(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        self.now += 1
        self.most = max(self.most, self.now)
        await self.go.wait()
        self.now -= 1
        return web.json_response({"port": 443, "established": int(request.match_info["n"])})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/agents/{n}/v1/connections", self.connections)
        return app


@async_test
async def test_the_shared_pool_bounds_requests_in_flight_across_agents() -> None:
    fake = Agents()
    async with serving(fake.app()) as url:
        pool = AgentPool(max_in_flight=3)
        clients = [AgentClient(f"{url}/agents/{n}", TOKEN, timeout_s=30, pool=pool) for n in range(20)]
        counts = asyncio.gather(*(client.connections() for client in clients))
        await until(lambda: fake.now == 3, what="three requests in flight")
        assert pool.in_flight == 3
        fake.go.set()
        assert await counts == list(range(20))
        for client in clients:
            await client.aclose()  # a shared pool is not closed by its clients ...
        assert await clients[0].connections() == 0  # ... so it still works
        await pool.aclose()
    assert fake.most == 3
