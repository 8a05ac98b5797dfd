"""The agent client is tested against a real node agent: the agent tests' fixtures start one."""

from tests.controller.agent.conftest import spawner, start_agent, start_app

__all__ = ["spawner", "start_agent", "start_app"]
