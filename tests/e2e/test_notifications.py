"""Issue 14 (items 3 and 4), end to end: a webhook receiver on loopback hears the start and the end of a
graceful drain and of a forced one (the controller's outbox) and of a node agent's fallback acting alone (the
agent's own webhook), each once, though it fails the first two attempts of every delivery; every attempt of one
notification carries one delivery id. Every process logs JSON, every line of a drain names the drain, and no
log holds a token, the webhook's URL or its header."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import E2E_BUDGET, SETTLE_S
from tests.fakes.threaded import serve
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import needs_root, write_secret

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]
HOOK_PATH = "/services/T0/B0/url-secret-5f1c"
HOOK_AUTH = "Bearer header-secret-9a2e"
JSON_LOGS = {"format": "json", "level": "debug"}


def _hook(workdir: Path, url: str) -> list[dict[str, Any]]:
    url_file = write_secret(workdir / "hook.url", url + HOOK_PATH)
    headers = write_secret(workdir / "hook.headers", f"Authorization: {HOOK_AUTH}")
    return [{"name": "oncall", "url_file": str(url_file), "headers_file": str(headers), "retry_initial_s": 0.2,
             "retry_max_s": 1.0}]


@pytest.mark.timeout(600)  # four servers, three agents, HAProxy and a swarm: slow to start on a loaded machine
def test_start_and_end_of_graceful_forced_and_fallback_drains_each_once(fleets: MakeFleet) -> None:
    fleet = fleets(E2E_BUDGET)
    with serve(WebhookReceiver(path=HOOK_PATH, authorization=HOOK_AUTH, fail_first=2)) as receiver:
        hooks = _hook(fleet.workdir, receiver.url)
        servers = {name: fleet.start_server(name, fault="ignore-drain" if name == "C" else None)
                   for name in ("A", "C", "D", "B")}
        lb = fleet.start_haproxy(list(servers.values()))
        lb.set_server_state("B", "maint")
        extra = {"webhooks": hooks, "log": JSON_LOGS}
        agents = {name: fleet.start_agent(servers[name], extra=extra, fallback={"grace_s": 0.5} if name == "D"
                                          else None) for name in ("A", "C", "D")}
        config = fleet.controller_config([agents["A"], agents["C"]], max_draining=2)
        controller = fleet.start_controller({**config, "webhooks": hooks, "log": JSON_LOGS})
        swarm = fleet.start_swarm(lb.ws_url, count=30, duration_s=3600, heartbeat_timeout_s=0)
        swarm.wait_joined(SETTLE_S)
        lb.set_server_state("B", "ready")
        platform = fleet.platform(controller=controller, lb=lb)
        retirements = [platform.retire(servers[name], agent=agents[name], notice_s=60, push=name != "D")
                       for name in ("A", "C", "D")]
        for retirement in retirements:
            retirement.wait_deleted(SETTLE_S)

        def all_delivered() -> list[Any] | None:
            delivered = receiver.delivered()
            return delivered if len(delivered) >= 6 else None

        delivered = wait_for(all_delivered, timeout_s=SETTLE_S, what="six notifications delivered")
        attempts = receiver.attempts
        swarm.stop()
        controller.stop()

    got = sorted((a.body["drainctl"]["instance"], a.event, a.body["drainctl"]["outcome"]) for a in delivered)
    assert got == [
        ("A", "drain.ended", "graceful"), ("A", "drain.started", None),
        ("C", "drain.ended", "forced"), ("C", "drain.started", None),
        ("D", "fallback.ended", "drained"), ("D", "fallback.started", None),
    ]
    assert len({a.delivery_id for a in delivered}) == 6, "each notification delivered once"
    for note in delivered:
        tries = [a.status for a in attempts if a.delivery_id == note.delivery_id]
        assert tries == [500, 500, 200], f"{note.delivery_id}: two failures, then once, all with one id"
        assert note.body["text"].startswith(f"drainctl: {note.body['drainctl']['instance']}")

    _check_logs(fleet, controller.log_path, [agents[n].process.log_path for n in agents], agents, servers)


def _check_logs(fleet: Fleet, controller_log: Path, agent_logs: list[Path], agents: Any, servers: Any) -> None:
    secrets = {HOOK_PATH.rsplit("/", 1)[1], HOOK_AUTH.split()[1],
               (fleet.workdir / "controller-api.token").read_text(encoding="utf-8").strip()}
    secrets |= {agent.token for agent in agents.values()} | {server.admin_token for server in servers.values()}
    drain_lines = 0
    for path in [controller_log, *agent_logs]:
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            assert secret not in text, f"a secret is in {path.name}"
        for line in text.splitlines():
            record = json.loads(line)  # every line is JSON
            assert {"time", "level", "logger", "message"} <= record.keys()
            assert not record["logger"].startswith("controller."), "drainctl's loggers are drainctl.<module>"
            if record["message"].startswith(("A: verifying -> drained", "C: forcing -> drained")):
                assert record.get("drain_id") is not None and record.get("instance") in ("A", "C")
                drain_lines += 1
            if path in agent_logs and record["message"].startswith("reset requested by controller"):
                assert record.get("drain_id") is not None, "the agent names the controller's drain"
    assert drain_lines == 2
