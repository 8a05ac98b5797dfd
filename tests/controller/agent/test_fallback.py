"""The local fallback on real sockets: a notice, a silent (or busy) controller, and the agent acting alone."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from controller.core import logs
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


class _QueueingController(http.server.BaseHTTPRequestHandler):
    """A controller that takes every push and holds the drain back for the disruption budget: its answer says
    the plan requests the drain `HOLD_S` from now at the latest (`start_by`), and it never drains."""

    HOLD_S = 3.0
    answered: ClassVar[list[float]] = []

    pushed: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.pushed.append(body["notice"]["id"])
        start_by = time.time() + self.HOLD_S
        self.answered.append(start_by)
        body = json.dumps({"disposition": "started", "drain_id": 1, "start_by": start_by}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def queueing_controller() -> Iterator[str]:
    _QueueingController.answered, _QueueingController.pushed = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QueueingController)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_drain_the_controller_holds_back_for_the_budget_is_not_drained_by_the_agent_before_its_start_by(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], connect: Connect, queueing_controller: str,
    tmp_path: Path,
) -> None:
    """The controller took the pushed notice and queued its drain behind the pool's disruption budget (found in
    the box: two old VMs deleted together, a budget of one; the second's agent drained, reset and released on
    its own 5 s after its notice, while the controller's drain of it was due 3 s later). The agent waits for the
    controller until the `start_by` of its push answer plus its grace, and only then drains alone."""
    push_token = tmp_path / "push.token"
    push_token.write_text("push-token\n")
    app = start_app(on_drain="ignore")
    agent = start_agent(app, fallback=FAST_FALLBACK, controllers=[queueing_controller],
                        push={"token_file": str(push_token), "advertise_url": "http://127.0.0.1:9100",
                              "retry_initial_s": 0.05})
    clients = connect(app.service_port, 2)
    wait_until(lambda: agent.connections() == 2, what="the 2 sockets to be established")
    not_after = time.time() + 20

    agent.call(lambda client: client.post_notice("n1", "terminate", not_after))
    notice = wait_until(lambda: _released(agent, "n1"), what="the agent to release the notice")

    [start_by] = _QueueingController.answered
    assert app.drains() == [{"rate_per_s": 321.0}], "the agent drained once, on its own, in the end"
    assert notice.drain_started_by == "agent" and notice.drain_started_at is not None
    assert notice.drain_started_at >= start_by, "not before the controller's own drain was due"
    assert notice.released_at is not None and notice.released_at < not_after
    assert all(was_reset(sock) for sock in clients)


async def _post_within_drain(client: AgentClient, not_after: float) -> None:
    with logs.bound(drain_id=7):  # the controller's client sends its drain id with every call of the drain
        await client.post_notice("100/DELETING/1", "terminate", not_after)
        await client.release("100/DELETING/1")


def test_a_notice_the_controller_posts_within_its_drain_is_not_pushed_back(
    start_app: Callable[..., App], start_agent: Callable[..., Agent], queueing_controller: str, tmp_path: Path,
) -> None:
    """GCP's release records the MIG's event on the agent as a notice and releases it; the agent pushed it back,
    and the controller took it for a new notice (found in the box). A notice posted with the controller's drain
    id is the controller's own and is not pushed; one posted without it (a supervisor's, the testbed's) is."""
    push_token = tmp_path / "push.token"
    push_token.write_text("push-token\n")
    app = start_app(on_drain="close")
    agent = start_agent(app, controllers=[queueing_controller],
                        push={"token_file": str(push_token), "advertise_url": "http://127.0.0.1:9100"})

    agent.call(lambda client: _post_within_drain(client, time.time() + 60))
    agent.call(lambda client: client.post_notice("n2", "terminate", time.time() + 60))
    wait_until(lambda: "n2" in _QueueingController.pushed, what="the push of n2")
    agent.call(lambda client: client.post_notice("n3", "terminate", time.time() + 60))
    wait_until(lambda: "n3" in _QueueingController.pushed, what="the push of n3")

    assert _QueueingController.pushed == ["n2", "n3"], "only the notices nobody's drain posted were pushed"
