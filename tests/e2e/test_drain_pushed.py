"""A pushed notice is drained at once, by the push alone: the agent reports it to `POST /v1/pushes` the moment
it is posted, the controller (which had never heard of the instance, and whose backstop poll waits an hour)
learns the instance from the push, drains it, verifies zero and releases the notice on the agent."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.ports import free_port
from tests.support import wait_until, write_secret
from tests.support.budgets import E2E as E2E_BUDGET

pytestmark = pytest.mark.e2e

MakeFleet = Callable[[Budget], Fleet]


def test_a_pushed_notice_from_an_unlisted_instance_is_drained_without_the_poll(fleets: MakeFleet) -> None:
    fleet = fleets(E2E_BUDGET)
    api = free_port()
    push_token = fleet.workdir / "push.token"
    write_secret(push_token, "a-push-token-for-the-test")
    server = fleet.start_server("A")
    agent = fleet.start_agent(server, fallback={"grace_s": 60.0}, extra={
        "controllers": [f"http://{free_port()}", f"http://{api}"],  # the first one is down
        "push": {"token_file": str(push_token), "pool": "web", "retry_initial_s": 0.2},
    })
    config = fleet.controller_config([], local_poll_interval_s=3600.0)
    config["api"].update({"listen": str(api), "push_token_file": str(push_token)})
    config["agents"]["token_file"] = str(agent.token_file)
    fleet.start_controller(config)

    agent.post_notice("n-pushed", "terminate", time.time() + 60)

    released = wait_until(lambda: (n := agent.notice("n-pushed")).state == "released" and n,
                          what="the pushed notice to be released")
    assert released.drain_started_by == "controller" and released.released_by == "controller"
