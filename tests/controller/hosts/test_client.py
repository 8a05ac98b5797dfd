"""The agent client turns transport failures into our error types."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from controller.core.errors import TemporaryError
from controller.hosts.client import AgentClient, AgentTimeout, AgentUnreachable
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
