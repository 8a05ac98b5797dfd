"""The controller's HTTP API against a real `drainctl run`, real node agents and real reference servers.

What an operator or the testbed supervisor would notice: a request without the right token is refused and
changes nothing (no journal line, no call to any host); bad input is a 400 that names the key; an unknown
instance is a 404; a dry run changes nothing; a pushed platform notice drains the host once, however often
it arrives, and is released; the daemon prints its ready line and exits 0 on SIGTERM.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.budget import Budget
from testbed.harness import Fleet
from tests.controller.api.stacks import Controller, Stack, drainctl
from tests.support import API_TOKEN, wait_until

pytestmark = pytest.mark.e2e

ROUTES = [
    ("GET", "/metrics"),
    ("POST", "/v1/drains"),
    ("POST", "/v1/events"),
    ("GET", "/v1/instances"),
    ("GET", "/v1/instances/B"),
    ("POST", "/v1/instances/B/reset"),
    ("GET", "/v1/history"),
    ("GET", "/v1/drains/1"),
    ("GET", "/v1/no-such-route"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("api")
    with Fleet(Budget(), workdir=workdir / "fleet") as fleet:
        stack = Stack(fleet, workdir)
        for name in ("A", "B"):
            stack.start_agent(fleet.start_server(name))
        stack.start_controller(stack.controller_config(list(stack.agents.values())))
        yield stack


@pytest.fixture
def controller(stack: Stack) -> Controller:
    return stack.controllers[0]


def _untouched(stack: Stack, name: str) -> bool:
    """The host saw no drain and no reset from anyone, and its server is not draining."""
    agent = stack.agents[name]
    calls = agent.metric("drainctl_agent_drains_requested_total") + agent.metric("drainctl_agent_resets_total")
    return calls == 0 and stack.server(name).status()["draining"] is False


def test_healthz_needs_no_token_and_every_other_route_refuses_a_missing_or_wrong_one(controller: Controller) -> None:
    health = controller.request("GET", "/healthz", token=None)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    for method, path in ROUTES:
        for token in (None, "wrong-token", API_TOKEN + "x", API_TOKEN[:-1]):
            response = controller.request(method, path, token=token, json={"instance": "B"})
            assert response.status_code == 401, (method, path, token, response.text)
            assert response.json() == {"error": "unauthorized"}


def test_refused_requests_change_nothing(stack: Stack, controller: Controller) -> None:
    before = controller.journal_lines()
    for method, path, body in [
        ("POST", "/v1/drains", {"instance": "B"}),
        ("POST", "/v1/instances/B/reset", None),
        ("POST", "/v1/events", {"instance": "B", "kind": "terminate", "not_after": time.time() + 60, "id": "n-1"}),
    ]:
        assert controller.request(method, path, token="wrong-token", json=body).status_code == 401
    assert controller.journal_lines() == before
    assert _untouched(stack, "B")
    assert API_TOKEN not in controller.process.log_tail()


def test_bad_input_is_a_400_naming_what_is_wrong(controller: Controller) -> None:
    cases = [
        ("/v1/drains", b"not json", "body"),
        ("/v1/drains", b'{"instance": "B", "deadline": 5}', "deadline"),
        ("/v1/drains", b'{"instance": "B", "deadline_s": -1}', "deadline_s"),
        ("/v1/drains", b'{"instance": "B", "rate_per_s": 0}', "rate_per_s"),
        ("/v1/drains", b"{}", "instance"),
        ("/v1/events", b'{"instance": "B", "kind": "terminate", "id": "x"}', "not_after"),
        ("/v1/events", b'{"instance": "B", "kind": "terminate", "not_after": 1, "id": "x", "source": "gcp"}',
         "source"),
    ]
    for path, content, key in cases:
        response = controller.request("POST", path, content=content)
        assert response.status_code == 400, (path, content, response.text)
        assert response.json()["error"].startswith(key), response.json()
    history = controller.request("GET", "/v1/history", params={"limit": "0"})
    assert history.status_code == 400 and "limit" in history.json()["error"]


def test_an_unknown_instance_or_drain_is_a_404(controller: Controller) -> None:
    for method, path, body in [
        ("POST", "/v1/drains", {"instance": "nope"}),
        ("POST", "/v1/drains", {"instance": "nope", "dry_run": True}),
        ("POST", "/v1/events", {"instance": "nope", "kind": "terminate", "not_after": time.time() + 60, "id": "n"}),
        ("GET", "/v1/instances/nope", None),
        ("POST", "/v1/instances/nope/reset", None),
    ]:
        response = controller.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "unknown instance 'nope' (known: A, B)"
    missing = controller.request("GET", "/v1/drains/999999")
    assert (missing.status_code, missing.json()) == (404, {"error": "unknown drain '999999'"})


def test_a_dry_run_says_what_would_happen_and_changes_nothing(stack: Stack, controller: Controller) -> None:
    before = controller.journal_lines()
    response = controller.request("POST", "/v1/drains", json={"instance": "B", "deadline_s": 20, "rate_per_s": 50,
                                                             "dry_run": True})
    assert response.status_code == 200, response.text
    plan = response.json()["dry_run"]
    assert plan["instance"] == "B" and plan["disposition"] == "started" and plan["rate_per_s"] == 50
    assert plan["drain_deadline_s"] == 20 and 19 < plan["force_in_s"] <= 20
    assert controller.journal_lines() == before
    assert _untouched(stack, "B")


def test_instances_list_every_inventory_instance(controller: Controller) -> None:
    listed = {item["instance"]: item for item in controller.get("/v1/instances")["instances"]}
    assert set(listed) >= {"A", "B"}
    assert listed["B"]["pool"] == "web"
    assert controller.get("/v1/instances/B")["instance"] == "B"


def test_a_pushed_notice_drains_its_host_once_and_is_released(stack: Stack, controller: Controller) -> None:
    agent = stack.agents["A"]
    not_after = round(time.time() + 120, 3)
    agent.post_notice("notice-A-1", "terminate", not_after)  # as the supervisor does: the agent, then the controller
    event = {"instance": "A", "kind": "terminate", "not_after": not_after, "id": "notice-A-1", "source": "local"}
    first = controller.request("POST", "/v1/events", json=event)
    assert first.status_code == 202, first.text
    # The local source polls the agent every 0.5 s: on a busy machine its copy of the notice may reach the engine
    # before the push does, and then the push is the duplicate. Either way there is exactly one drain (the
    # `started` count below is 1) and both copies name it.
    assert first.json()["disposition"] in ("started", "duplicate")
    drain_id = first.json()["drain"]["id"]
    again = controller.request("POST", "/v1/events", json=event)
    assert (again.status_code, again.json()["disposition"], again.json()["drain"]["id"]) == (202, "duplicate", drain_id)

    record = wait_until(lambda: _finished(controller, drain_id), what="the pushed drain to be released")
    assert record["drain"]["phase"] == "released" and record["drain"]["outcome"] == "graceful"
    steps = [line["step"] for line in record["journal"]]
    assert steps.count("drain requested") == 1 and steps[-1] == "released"
    assert agent.notice("notice-A-1")["state"] == "released"
    assert agent.metric("drainctl_agent_drains_requested_total", {"by": "controller"}) == 1
    assert stack.server("A").status()["draining"] is True
    assert [d["id"] for d in controller.get("/v1/history")["drains"] if d["instance"] == "A"] == [drain_id]
    assert controller.metric("drainctl_drains_total", {"outcome": "graceful"}) == 1
    assert controller.metric("drainctl_events_total", {"source": "local", "disposition": "started"}) == 1
    assert controller.metric("drainctl_events_total", {"source": "local", "disposition": "duplicate"}) >= 1


def _finished(controller: Controller, drain_id: int) -> dict[str, Any] | None:
    record = controller.get(f"/v1/drains/{drain_id}")
    return record if record["drain"]["finished"] else None


def test_with_manual_drains_disabled_a_drain_is_a_409_and_sigterm_exits_0(stack: Stack) -> None:
    config = stack.controller_config(list(stack.agents.values()), sources={"manual": {"enabled": False},
                                                                           "local": {"enabled": False}})
    controller = stack.start_controller(config)
    response = controller.request("POST", "/v1/drains", json={"instance": "B"})
    assert response.status_code == 409
    assert response.json() == {"error": "manual drains are disabled (sources.manual.enabled: false)"}
    ran = drainctl("drain", "B", controller=controller)
    assert ran.code == 1
    assert ran.stderr.strip() == "drainctl: manual drains are disabled (sources.manual.enabled: false)"
    assert _untouched(stack, "B")

    controller.process.signal(signal.SIGTERM)
    assert controller.process.wait_exit(30) == 0
    log = controller.process.log_tail()
    assert "controller stopped" in log and API_TOKEN not in log


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"api": {"listen": "127.0.0.1:0", "token_file": "{dir}/t"}, "surprise": 1},
         "surprise: Extra inputs are not permitted"),
        ({}, "api: required by `drainctl run`"),
        ({"api": {"listen": "127.0.0.1:0", "token_file": "{dir}/missing.token"}}, "api.token_file: cannot read"),
        ({"api": {"listen": "nowhere", "token_file": "{dir}/t"}}, "api.listen: expected HOST:PORT"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path, config: dict[str, object], message: str) -> None:
    (tmp_path / "t").write_text("secret-token\n")
    path = tmp_path / "controller.yaml"
    text = yaml.safe_dump({"journal": str(tmp_path / "journal.sqlite"), **config}).replace("{dir}", str(tmp_path))
    path.write_text(text)
    ran = drainctl("run", "--config", str(path), timeout_s=60)
    assert ran.code == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drainctl: ") and message in lines[0], ran.stderr
    assert ran.stdout == "" and "secret-token" not in ran.stderr
