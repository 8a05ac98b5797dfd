"""The local fallback on real sockets: a notice, a silent (or busy) controller, and the agent acting alone."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from controller.hosts.client import AgentClient, Notice
from tests.controller.agent.conftest import Agent, App, needs_root, wait_until, was_reset

Connect = Callable[[int, int], list[socket.socket]]
FAST_FALLBACK: dict[str, Any] = {
    "enabled": True, "grace_s": 0.5, "drain_rate_per_s": 321, "no_progress_window_s": 1.0, "reset_margin_s": 2.0,
    "poll_s": 0.1,
}


def _released(agent: Agent, notice_id: str) -> Notice | None:
    notice = agent.call(lambda client: client.notice(notice_id))
    return notice if notice.state == "released" else None


@needs_root
def test_a_silent_controller_gets_drained_reset_and_released_by_the_agent(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app(on_drain="ignore")
    agent = start_agent(app, fallback=FAST_FALLBACK)
    clients = connect(app.service_port, 5)
    wait_until(lambda: agent.connections() == 5, what="the 5 sockets to be established")
    not_after = time.time() + 60

    agent.call(lambda client: client.post_notice("n1", "terminate", not_after))
    notice = wait_until(lambda: _released(agent, "n1"), what="the agent to release the notice")

    assert app.drains() == [{"rate_per_s": 321.0}], "the agent drained once, at its fallback rate"
    assert (notice.drain_started_by, notice.released_by, notice.reset) == ("agent", "agent", 5)
    assert notice.released_at is not None and notice.released_at < not_after
    assert all(was_reset(sock) for sock in clients)


def test_a_graceful_agent_drain_releases_without_a_reset(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app(on_drain="close")
    agent = start_agent(app, fallback={**FAST_FALLBACK, "no_progress_window_s": 20.0})
    clients = connect(app.service_port, 5)
    wait_until(lambda: agent.connections() == 5, what="the 5 sockets to be established")

    agent.call(lambda client: client.post_notice("n1", "terminate", time.time() + 60))
    notice = wait_until(lambda: _released(agent, "n1"), what="the agent to release the notice")

    assert (notice.drain_started_by, notice.reset) == ("agent", None)
    assert all(sock.recv(1) == b"" for sock in clients), "each socket was closed by the app, not reset"


async def _notice_then_drain(client: AgentClient, not_after: float) -> None:
    await client.post_notice("n1", "terminate", not_after)
    await client.drain(50)


@needs_root
def test_with_a_controller_drain_the_agent_does_not_drain_but_still_releases_before_not_after(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app(on_drain="ignore")
    agent = start_agent(app, fallback={**FAST_FALLBACK, "grace_s": 30.0})
    clients = connect(app.service_port, 3)
    wait_until(lambda: agent.connections() == 3, what="the 3 sockets to be established")
    not_after = time.time() + 8

    agent.call(lambda client: _notice_then_drain(client, not_after))
    notice = wait_until(lambda: _released(agent, "n1"), what="the agent to release the notice at its deadline")

    assert app.drains() == [{"rate_per_s": 50.0}], "only the controller's drain reached the app"
    assert (notice.drain_started_by, notice.released_by, notice.reset) == ("controller", "agent", 3)
    assert notice.released_at is not None and notice.released_at < not_after
    assert all(was_reset(sock) for sock in clients)


async def _notice_then_out_of_rotation(client: AgentClient, not_after: float) -> None:
    await client.post_notice("n1", "terminate", not_after)
    await client.not_ready()


@needs_root
def test_the_controllers_out_of_rotation_step_calls_off_the_fallbacks_own_drain(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    """The controller's drain starts with its out-of-rotation step (not ready, then wait for the load balancer),
    which may last longer than the fallback's grace: the agent must not drain and release on its own meanwhile
    (found in the box: the fallback drained at 5 s while the controller waited for the GCP backend service, and
    the controller's drain of a VM already deleted never ended). It guards the controller's drain instead."""
    app = start_app(on_drain="ignore")
    agent = start_agent(app, fallback=FAST_FALLBACK)
    clients = connect(app.service_port, 2)
    wait_until(lambda: agent.connections() == 2, what="the 2 sockets to be established")
    not_after = time.time() + 6

    agent.call(lambda client: _notice_then_out_of_rotation(client, not_after))
    notice = wait_until(lambda: _released(agent, "n1"), what="the agent to release the notice at its deadline")

    assert app.drains() == [], "no drain of the agent's own while the controller's step ran"
    assert (notice.drain_started_by, notice.released_by, notice.reset) == ("controller", "agent", 2)
    assert notice.released_at is not None and notice.released_at < not_after
    assert all(was_reset(sock) for sock in clients)
