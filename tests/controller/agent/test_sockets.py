"""Counting and resetting the service port's sockets through the kernel, via the agent's API and client."""

from __future__ import annotations

import socket
from collections.abc import Callable

from tests.controller.agent.conftest import Agent, App, echoes, was_reset
from tests.support import needs_root, wait_until

Connect = Callable[[int, int], list[socket.socket]]


def test_connections_counts_the_established_sockets_on_the_service_port(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app()
    agent = start_agent(app)
    assert agent.connections() == 0

    connect(app.service_port, 7)

    wait_until(lambda: agent.connections() == 7, what="the kernel count to reach 7")


@needs_root
def test_reset_aborts_every_socket_on_the_service_port_and_nothing_else(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app, other_app = start_app(), start_app()
    agent = start_agent(app)
    ours = connect(app.service_port, 5)
    theirs = connect(other_app.service_port, 3)
    wait_until(lambda: agent.connections() == 5, what="the 5 sockets to be established")

    assert agent.call(lambda client: client.reset()) == 5

    assert all(was_reset(sock) for sock in ours)
    assert agent.connections() == 0
    assert all(echoes(sock) for sock in theirs), "sockets on another port must keep working"


@needs_root
def test_a_stopped_app_can_still_be_counted_and_reset(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app()
    agent = start_agent(app)
    clients = connect(app.service_port, 4)
    wait_until(lambda: agent.connections() == 4, what="the 4 sockets to be established")

    app.spawned.pause()

    assert agent.connections() == 4
    assert agent.call(lambda client: client.reset()) == 4
    assert all(was_reset(sock) for sock in clients)
    assert agent.connections() == 0


@needs_root
def test_reset_leaves_the_listening_socket_alone(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect
) -> None:
    app = start_app()
    agent = start_agent(app)
    connect(app.service_port, 2)
    wait_until(lambda: agent.connections() == 2, what="the 2 sockets to be established")
    assert agent.call(lambda client: client.reset()) == 2

    (newcomer,) = connect(app.service_port, 1)

    assert echoes(newcomer), "the app must still accept new connections after a reset"
