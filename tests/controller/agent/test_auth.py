"""The agent's API refuses a missing or wrong bearer token, and nothing happens when it does."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import httpx
import pytest

from controller.hosts.client import AgentClient, AgentUnauthorized
from tests.controller.agent.conftest import TOKEN, Agent, App, echoes
from tests.support import wait_until

GUARDED = [
    ("POST", "/v1/drain"),
    ("GET", "/v1/connections"),
    ("POST", "/v1/reset"),
    ("GET", "/v1/notices"),
    ("POST", "/v1/notices"),
    ("GET", "/v1/notices/n1"),
    ("POST", "/v1/notices/n1/release"),
    ("GET", "/metrics"),
    ("GET", "/no-such-route"),
]
BAD_HEADERS = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=["none", "wrong", "no-scheme", "prefix", "longer"])
def test_every_route_but_health_needs_the_token_and_does_nothing_without_it(
    start_app: Callable[..., App],
    start_agent: Callable[..., Agent],
    connect: Callable[[int, int], list[socket.socket]],
    headers: dict[str, str],
) -> None:
    app = start_app()
    agent = start_agent(app)
    clients = connect(app.service_port, 3)
    wait_until(lambda: agent.connections() == 3, what="the 3 sockets to be established")

    with httpx.Client(base_url=agent.base_url, headers=headers, timeout=10) as http:
        for method, path in GUARDED:
            body = {"rate_per_s": 10} if path == "/v1/drain" else {"id": "n1", "kind": "terminate", "not_after": 1}
            response = http.request(method, path, json=body)
            assert (response.status_code, response.json()) == (401, {"error": "unauthorized"}), (method, path)
        assert http.get("/healthz").json() == {"status": "ok"}

    assert agent.connections() == 3, "a refused reset must not reset anything"
    assert all(echoes(sock) for sock in clients)
    assert app.drains() == [], "a refused drain must not reach the app"
    assert agent.call(lambda client: client.notices()) == [], "a refused notice must not be recorded"


def test_the_client_reports_a_wrong_token_as_unauthorized(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(start_app())

    async def count_with_wrong_token() -> int:
        client = AgentClient(agent.base_url, "not-the-token")
        try:
            return await client.connections()
        finally:
            await client.aclose()

    with pytest.raises(AgentUnauthorized):
        asyncio.run(count_with_wrong_token())
