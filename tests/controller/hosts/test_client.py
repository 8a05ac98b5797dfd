"""The agent client turns transport failures, error statuses and answers that are not the wire protocol's into
our error types, and reads what older and newer agents say."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pytest

from controller.core.errors import TemporaryError
from controller.hosts.client import (
    AgentClient,
    AgentError,
    AgentTimeout,
    AgentUnauthorized,
    AgentUnavailable,
    AgentUnreachable,
)
from tests.controller.agent.conftest import TOKEN, Agent, App


def _count(base_url: str, *, timeout_s: float) -> int:
    async def run() -> int:
        client = AgentClient(base_url, TOKEN, timeout_s=timeout_s)
        try:
            return await client.connections()
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_an_agent_nobody_listens_for_is_unreachable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with pytest.raises(AgentUnreachable) as caught:
        _count(f"http://127.0.0.1:{port}", timeout_s=5)

    assert isinstance(caught.value, TemporaryError)


def test_a_stopped_agent_times_out(start_app: Callable[..., App], start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(start_app())
    agent.spawned.pause()

    with pytest.raises(AgentTimeout):
        _count(agent.base_url, timeout_s=0.5)


Handler = Callable[[httpx.Request], httpx.Response]
T = TypeVar("T")
FULL_NOTICE = {"id": "n/1", "kind": "terminate", "not_after": 1000.5, "seen_at": 900.0, "state": "draining",
               "drain_started_by": "controller", "reset": None, "released_at": None, "released_by": None,
               "source": "api", "drain_started_at": 901.0}


def _against(handler: Handler, operation: Callable[[AgentClient], Awaitable[T]]) -> T:
    """Run one client operation against answers made up by `handler` (the client's own parsing, no agent)."""

    async def run() -> T:
        client = AgentClient("http://agent.test:9100", TOKEN, transport=httpx.MockTransport(handler))
        try:
            return await operation(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_requests_carry_the_token_and_the_protocols_paths_and_bodies() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), request.headers["Authorization"],
                     request.content))
        return httpx.Response(202, json={"accepted": True, "app": {}}) if request.url.path == "/v1/drain" \
            else httpx.Response(200, json=FULL_NOTICE)

    async def calls(client: AgentClient) -> None:
        await client.drain(12.5)
        await client.post_notice("n/1", "terminate", 1000.5)
        await client.release("n/1")

    _against(record, calls)

    assert [(method, path) for method, path, _, _ in seen] == [
        ("POST", "/v1/drain"), ("POST", "/v1/notices"), ("POST", "/v1/notices/n%2F1/release")]
    assert {token for _, _, token, _ in seen} == {f"Bearer {TOKEN}"}
    assert [json.loads(body) for _, _, _, body in seen[:2]] == [
        {"rate_per_s": 12.5}, {"id": "n/1", "kind": "terminate", "not_after": 1000.5}]


def test_a_newer_agents_extra_keys_and_an_older_agents_missing_ones_are_both_read() -> None:
    newer = {**FULL_NOTICE, "priority": "high"}
    older = {"id": "n/2", "kind": "preempt", "not_after": 50, "state": "open"}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"notices": [newer, older], "generation": 7})

    first, second = _against(answer, lambda client: client.notices())

    assert (first.id, first.state, first.drain_started_by, first.drain_started_at) == ("n/1", "draining",
                                                                                         "controller", 901.0)
    assert (second.id, second.kind, second.not_after, second.state) == ("n/2", "preempt", 50.0, "open")
    assert (second.seen_at, second.released_by, second.source) == (None, None, None)


MALFORMED = [
    ("GET /v1/connections", lambda client: client.connections(), {"port": 8080}),
    ("GET /v1/connections", lambda client: client.connections(), {"port": 8080, "established": "many"}),
    ("POST /v1/reset", lambda client: client.reset(), ["not", "an", "object"]),
    ("GET /v1/notices", lambda client: client.notices(), {"notices": {"n/1": FULL_NOTICE}}),
    ("GET /v1/notices", lambda client: client.notices(), {"notices": [{"kind": "terminate", "state": "open"}]}),
    ("GET /v1/notices/n1", lambda client: client.notice("n1"), {**FULL_NOTICE, "not_after": "soon"}),
]


@pytest.mark.parametrize(("what", "operation", "body"), MALFORMED)
def test_an_answer_that_is_not_the_protocols_is_a_malformed_agent_error(
    what: str, operation: Callable[[AgentClient], Awaitable[object]], body: object
) -> None:
    with pytest.raises(AgentError) as caught:
        _against(lambda request: httpx.Response(200, json=body), operation)

    assert "malformed" in str(caught.value) and what in str(caught.value)
    assert caught.value.status == 0


def test_an_answer_that_is_not_json_is_an_agent_error_with_its_status() -> None:
    with pytest.raises(AgentError) as caught:
        _against(lambda request: httpx.Response(200, text="<html>proxy</html>"), lambda client: client.reset())

    assert "not JSON" in str(caught.value) and caught.value.status == 200


def test_error_statuses_become_our_errors_with_the_agents_reason() -> None:
    def unknown(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "unknown notice 'gone'"})

    with pytest.raises(AgentError) as caught:
        _against(unknown, lambda client: client.release("gone"))
    assert caught.value.status == 404 and "unknown notice 'gone'" in str(caught.value)

    with pytest.raises(AgentTimeout, match="the app's drain hook did not answer"):
        _against(lambda request: httpx.Response(504, json={"error": "the app's drain hook did not answer"}),
                 lambda client: client.drain(10))
    with pytest.raises(AgentUnauthorized, match="refused the token"):
        _against(lambda request: httpx.Response(401, json={"error": "unauthorized"}), lambda client: client.reset())


def test_transport_failures_name_the_agent() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(AgentUnreachable) as unreachable:
        _against(refused, lambda client: client.connections())
    with pytest.raises(AgentTimeout) as timeout:
        _against(silent, lambda client: client.connections())

    assert "unreachable" in str(unreachable.value) and "http://agent.test:9100" in str(unreachable.value)
    assert "no answer to GET /v1/connections" in str(timeout.value)


TEMPORARY_STATUSES = [(503, {"Retry-After": "7"}, 7.0), (429, {"Retry-After": "3"}, 3.0), (500, {}, 1.0),
                      (502, {}, 1.0)]


@pytest.mark.parametrize(("status", "headers", "delay_s"), TEMPORARY_STATUSES)
def test_an_agents_own_temporary_failure_is_retried_not_given_up(
    status: int, headers: dict[str, str], delay_s: float
) -> None:
    """issue 9, case 2: the agent answers 503 when `ss` times out (429/5xx alike); that must be a TemporaryError
    (with the Retry-After it gave), so the engine retries the reset or release instead of failing the episode."""
    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": "ss did not answer in time"}, headers=headers)

    with pytest.raises(AgentUnavailable) as caught:
        _against(unavailable, lambda client: client.reset())

    assert isinstance(caught.value, TemporaryError) and not isinstance(caught.value, AgentError)
    assert caught.value.delay_s == delay_s and caught.value.status == status
    assert "ss did not answer in time" in str(caught.value)
