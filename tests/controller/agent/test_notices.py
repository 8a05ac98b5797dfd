"""Lifecycle notices over the API: recorded once per id, listed, released, counted in /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from controller.hosts.client import AgentClient, AgentError, Notice
from tests.controller.agent.conftest import TOKEN, Agent, App


async def _post_twice_then_list(client: AgentClient, not_after: float) -> list[Notice]:
    await client.post_notice("vm-a/terminate/1", "terminate", not_after)
    await client.post_notice("vm-a/terminate/1", "terminate", not_after + 100)
    return await client.notices()


def test_a_notice_is_recorded_once_per_id(start_app: Callable[..., App], start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(start_app())
    not_after = time.time() + 600

    (notice,) = agent.call(lambda client: _post_twice_then_list(client, not_after))

    assert (notice.id, notice.kind, notice.not_after) == ("vm-a/terminate/1", "terminate", not_after)
    assert (notice.state, notice.drain_started_by, notice.reset, notice.released_at) == ("open", None, None, None)


async def _release(client: AgentClient) -> Notice:
    await client.post_notice("n/1", "terminate", time.time() + 600)
    await client.release("n/1")
    await client.release("n/1")
    return await client.notice("n/1")


def test_release_marks_the_notice_released_once(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(start_app())
    before = time.time()

    notice = agent.call(_release)

    assert notice.state == "released" and notice.released_by == "controller"
    assert notice.released_at is not None and before <= notice.released_at <= time.time()
    metrics = httpx.get(f"{agent.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'drainctl_agent_notices_released_total{by="controller"} 1.0' in metrics
    assert 'drainctl_agent_notices_seen_total{kind="terminate"} 1.0' in metrics


def test_an_unknown_notice_is_a_404(start_app: Callable[..., App], start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(start_app())

    with pytest.raises(AgentError) as caught:
        agent.call(lambda client: client.release("never-seen"))

    assert caught.value.status == 404


def test_a_controller_drain_marks_open_notices_as_drained_by_the_controller(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(start_app())

    async def notice_then_drain(client: AgentClient) -> Notice:
        await client.post_notice("n1", "terminate", time.time() + 600)
        await client.drain(50)
        return await client.notice("n1")

    notice = agent.call(notice_then_drain)

    assert (notice.state, notice.drain_started_by) == ("draining", "controller")


WIRE_KEYS = {"id", "kind", "not_after", "seen_at", "state", "drain_started_by", "reset", "released_at",
             "released_by", "source", "drain_started_at"}
"""Every key of a notice on the wire: the testbed supervisor, deployed controllers and the e2e tests read them."""


def test_a_notice_on_the_wire_keeps_every_key_on_each_route(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(start_app())
    body = {"id": "n/wire", "kind": "preempt", "not_after": 4e9}

    with httpx.Client(base_url=agent.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as http:
        posted = http.post("/v1/notices", json=body)
        listed = http.get("/v1/notices").json()
        one = http.get("/v1/notices/n%2Fwire").json()
        released = http.post("/v1/notices/n%2Fwire/release").json()

    assert posted.status_code == 201 and set(posted.json()) == WIRE_KEYS
    assert set(listed) == {"notices"} and [set(notice) for notice in listed["notices"]] == [WIRE_KEYS]
    assert set(one) == set(released) == WIRE_KEYS
    assert (one["id"], one["kind"], one["not_after"], one["state"], one["source"]) == (
        "n/wire", "preempt", 4e9, "open", "api")
    assert (released["state"], released["released_by"]) == ("released", "controller")


def test_a_notice_request_with_an_unknown_key_is_a_400_and_records_nothing(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    agent = start_agent(start_app())
    body = {"id": "n1", "kind": "terminate", "not_after": 4e9, "priority": "high"}

    response = httpx.post(f"{agent.base_url}/v1/notices", json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 400
    assert response.json()["error"].startswith("priority: ")
    assert agent.call(lambda client: client.notices()) == []
