"""`POST /v1/drain` delegates to the app's drain hook; an unreachable or stopped app is reported, not hidden."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from controller.hosts.client import AgentTimeout, AgentUnavailable
from tests.controller.agent.conftest import TOKEN, Agent, App
from tests.support import APP_TOKEN, wait_until


def test_drain_calls_the_apps_hook_with_its_token_and_the_rate(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    app = start_app()
    agent = start_agent(app)

    agent.call(lambda client: client.drain(125.0))

    assert app.drains() == [{"rate_per_s": 125.0}], "the app accepts only its own token, so this proves both"


def test_drain_answers_202_with_the_apps_answer(
    start_app: Callable[..., App],
    start_agent: Callable[..., Agent],
    connect: Callable[[int, int], list[socket.socket]],
) -> None:
    app = start_app(on_drain="close")
    agent = start_agent(app)
    connect(app.service_port, 6)
    wait_until(lambda: httpx.get(f"{app.admin_url}/admin/status", headers={"Authorization": f"Bearer {APP_TOKEN}"})
               .json()["open_sockets"] == 6, what="the app to hold 6 sockets")

    response = httpx.post(f"{agent.base_url}/v1/drain", json={"rate_per_s": 1000},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    assert response.status_code == 202
    assert response.json() == {"accepted": True, "app": {"accepted": True, "open_sockets": 6, "rate_per_s": 1000.0}}
    wait_until(lambda: agent.connections() == 0, what="the app to close its sockets after the drain")


def test_drain_with_an_unreachable_app_is_a_502(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    agent = start_agent(start_app(), drain_url=f"http://127.0.0.1:{closed_port}/admin/drain")

    with pytest.raises(AgentUnavailable) as caught:  # a 5xx is temporary (issue 9, case 2); never re-sent anyway
        agent.call(lambda client: client.drain(10))

    assert caught.value.status == 502
    assert "unreachable" in str(caught.value)


def test_drain_with_a_stopped_app_times_out_as_a_504(
    start_app: Callable[..., App], start_agent: Callable[..., Agent]
) -> None:
    app = start_app()
    agent = start_agent(app)
    app.spawned.pause()

    with pytest.raises(AgentTimeout):
        agent.call(lambda client: client.drain(10))

    response = httpx.post(f"{agent.base_url}/v1/drain", json={"rate_per_s": 10},
                          headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 504


@pytest.mark.parametrize("body", [{}, {"rate_per_s": 0}, {"rate_per_s": "fast"}, {"rate_per_s": 5, "extra": 1}])
def test_a_malformed_drain_request_is_a_400_and_never_reaches_the_app(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], body: dict[str, object]
) -> None:
    app = start_app()
    agent = start_agent(app)

    response = httpx.post(f"{agent.base_url}/v1/drain", json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 400
    assert "error" in response.json()
    assert app.drains() == []
