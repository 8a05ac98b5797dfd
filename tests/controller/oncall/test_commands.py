"""The on-call CLI (`drainctl drain | status | history | reset`) against a real controller, agents and servers.

Servers A and B sit behind HAProxy with their node agents; C is in the inventory but its agent is gone.
What on-call would notice: every mistake is one line with the right exit code and never shows a token; a
dry run changes nothing; `drain A --wait` drains A's real WebSocket clients with 1012 onto B and exits 0, and
status/history show it; a drain that cannot complete exits 1; `reset --yes` resets a live server's sockets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.ports import free_port
from tests.controller.api.stacks import Controller, Ran, Stack, drainctl, drainctl_on_a_terminal
from tests.support import API_TOKEN, wait_until, write_secret

pytestmark = pytest.mark.e2e

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="socket destroy (ss -K) needs CAP_NET_ADMIN; runs as root and in CI",
)
SWARM_S = 600.0
"""Bounds a swarm nobody stops; each test stops its own."""
CONTROLLER_BUDGET = Budget(verify_s=2.0, margin_s=5.0)
"""Short verify window, so a drain that cannot reset gives up (and the CLI exits 1) within seconds."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("oncall")
    with Fleet(Budget(), workdir=workdir / "fleet") as fleet:
        stack = Stack(fleet, workdir)
        a, b = fleet.start_server("A"), fleet.start_server("B")
        fleet.start_haproxy([a, b])
        agents = [stack.start_agent(a), stack.start_agent(b)]
        config = stack.controller_config(agents, budget=CONTROLLER_BUDGET.as_dict())
        config["instances"]["C"] = {"pool": "other", "agent_url": f"http://{free_port()}",
                                    "agent_token_file": str(agents[0].token_file)}
        stack.start_controller(config)
        yield stack


@pytest.fixture
def controller(stack: Stack) -> Controller:
    return stack.controllers[0]


def _one_line(ran: Ran, code: int) -> str:
    """The single stderr line of a failed command (no traceback), after checking its exit code."""
    lines = ran.stderr.strip().splitlines()
    assert ran.code == code, (ran.code, ran.stdout, ran.stderr)
    assert len(lines) == 1 and lines[0].startswith("drainctl: "), ran.stderr
    return lines[0]


def _untouched(stack: Stack, name: str) -> bool:
    agent = stack.agents[name]
    calls = agent.metric("drainctl_agent_drains_requested_total") + agent.metric("drainctl_agent_resets_total")
    return calls == 0 and stack.server(name).status()["draining"] is False


# --- mistakes: one line each, the right exit code --------------------------------------------------------------


def test_an_unknown_instance_is_a_usage_error(controller: Controller) -> None:
    for args in (["drain", "nope"], ["drain", "nope", "--dry-run"], ["reset", "nope", "--yes"]):
        line = _one_line(drainctl(*args, controller=controller), 2)
        assert line == "drainctl: unknown instance 'nope' (known: A, B, C)"


def test_an_unreachable_controller_names_its_url(controller: Controller) -> None:
    nowhere = f"http://{free_port()}"
    for args in (["status"], ["history", "--json"], ["drain", "A"]):
        line = _one_line(drainctl(*args, controller=controller, env={"DRAINCTL_CONTROLLER": nowhere}), 1)
        assert f"cannot reach the controller at {nowhere}" in line and "connection refused" in line


def test_a_refused_token_is_a_usage_error_and_is_never_shown(stack: Stack, controller: Controller) -> None:
    wrong = write_secret(stack.workdir / "wrong.token", "not-the-controller-token")
    for args in (["status"], ["drain", "B"], ["reset", "B", "--yes"]):
        ran = drainctl(*args, controller=controller, env={"DRAINCTL_TOKEN_FILE": str(wrong)})
        line = _one_line(ran, 2)
        assert "refused the token" in line and str(wrong) in line
        assert "not-the-controller-token" not in ran.stdout + ran.stderr and API_TOKEN not in ran.stderr
    assert _untouched(stack, "B")


def test_a_missing_token_file_is_a_usage_error(controller: Controller, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.token"
    for flags in (["--token-file", str(missing)], []):
        env = {} if flags else {"DRAINCTL_TOKEN_FILE": str(missing)}
        line = _one_line(drainctl("status", *flags, controller=controller, env=env), 2)
        assert line == f"drainctl: --token-file: cannot read '{missing}': No such file or directory " \
                       "(set --token-file or DRAINCTL_TOKEN_FILE)"


def test_bad_flags_are_usage_errors(controller: Controller) -> None:
    assert "--deadline: must be a positive" in _one_line(drainctl("drain", "A", "--deadline", "0",
                                                                  controller=controller), 2)
    assert "--controller: expected an http" in _one_line(drainctl("status", "--controller", "ftp://x",
                                                                  controller=controller), 2)


def test_reset_without_a_terminal_or_yes_refuses_and_does_nothing(stack: Stack, controller: Controller) -> None:
    line = _one_line(drainctl("reset", "B", controller=controller), 2)
    assert line == "drainctl: refusing to reset B without confirmation: no terminal to ask on; pass --yes"
    assert _untouched(stack, "B")


def test_reset_on_a_terminal_asks_first_and_no_means_nothing_happens(stack: Stack, controller: Controller) -> None:
    ran = drainctl_on_a_terminal("reset", "B", controller=controller, answer=b"n\n")
    assert ran.code == 1, ran.stdout
    assert "Reset every socket of B now with TCP RSTs (phase " in ran.stdout
    assert "drainctl: reset of B not confirmed; nothing was done" in ran.stdout
    assert _untouched(stack, "B")


# --- what each command does -------------------------------------------------------------------------------------


def test_a_dry_run_says_what_would_happen_and_changes_nothing(stack: Stack, controller: Controller) -> None:
    before = controller.journal_lines()
    ran = drainctl("drain", "B", "--dry-run", "--deadline", "20", "--rate", "50", controller=controller)
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("dry run: B would start draining now")
    assert "graceful at 50/s, then reset what is left in 20.0 s" in ran.stdout
    assert "nothing was changed" in ran.stdout
    as_json = drainctl("drain", "B", "--dry-run", "--json", controller=controller)
    assert as_json.code == 0 and as_json.json()["dry_run"]["disposition"] == "started"
    assert controller.journal_lines() == before
    assert _untouched(stack, "B")


def test_drain_wait_drains_every_socket_with_1012_and_status_and_history_show_it(
    stack: Stack, controller: Controller
) -> None:
    lb = stack.fleet.load_balancers[0]
    swarm = stack.fleet.start_swarm(lb.ws_url, count=40, duration_s=SWARM_S)
    swarm.wait_joined()
    on_a = stack.server("A").open_sockets()
    assert on_a > 0

    ran = drainctl("drain", "A", "--wait", "--rate", "100", controller=controller)
    assert ran.code == 0, (ran.stdout, ran.stderr)
    lines = ran.stdout.strip().splitlines()
    assert re.fullmatch(r"A: drain \d+ started \(manual\): graceful at 100/s for up to 30 s, then what is left is "
                        r"reset", lines[0])
    assert re.fullmatch(rf"A: drain \d+ graceful: {on_a} sockets closed by the app, 0 reset, verified zero by kernel, "
                        r"\d+\.\d s", lines[-1]), lines
    assert stack.server("A").open_sockets() == 0

    wait_until(lambda: stack.server("B").open_sockets() == 40, what="A's clients to reconnect to B")
    report = swarm.stop()
    from_a = [d for d in report["disconnects"] if d["server"] == "A"]
    assert len(from_a) == on_a and all((d["cause"], d["code"]) == ("close", 1012) for d in from_a)
    assert report["connected_at_end"] == 40 and report["servers_at_end"] == {"B": 40}

    listed = drainctl("status", "--json", controller=controller).json()["instances"]
    status = {item["instance"]: item for item in listed}
    assert (status["A"]["phase"], status["A"]["outcome"], status["A"]["sockets_remaining"]) == (
        "released", "graceful", 0)
    table = drainctl("status", controller=controller)
    assert table.code == 0 and re.search(r"│ A\s+│ web\s+│ released\s+│ \d+\s+│\s+0 │.*│ graceful", table.stdout)
    drains = drainctl("history", "--json", "--limit", "5", controller=controller).json()["drains"]
    latest_a = next(d for d in drains if d["instance"] == "A")
    assert (latest_a["source"], latest_a["outcome"], latest_a["sockets_before"], latest_a["sockets_reset"]) == (
        "manual", "graceful", on_a, 0)
    history = drainctl("history", controller=controller)
    assert re.search(rf"│ {latest_a['id']}\s+│ A\s+│ manual\s+│ manual .*│ released\s+│ graceful\s+│\s+{on_a} │\s+0 │",
                     history.stdout), history.stdout


def test_a_drain_that_cannot_complete_exits_1_with_the_reason(controller: Controller) -> None:
    ran = drainctl("drain", "C", "--wait", "--deadline", "1", controller=controller)
    assert ran.code == 1, (ran.stdout, ran.stderr)
    last = ran.stdout.strip().splitlines()[-1]
    assert re.match(r"C: drain \d+ failed after \d+\.\d s: could not reset before the release deadline", last), last
    assert "unreachable" in last


@needs_root
def test_reset_yes_resets_a_live_servers_sockets_and_its_clients_come_back(
    stack: Stack, controller: Controller
) -> None:
    b = stack.server("B")
    swarm = stack.fleet.start_swarm(b.ws_url, count=20, duration_s=SWARM_S)
    swarm.wait_joined()
    connects = b.metric("drainctl_testbed_connects_total")
    ran = drainctl("reset", "B", "--yes", controller=controller)
    assert ran.code == 0, (ran.stdout, ran.stderr)
    match = re.fullmatch(r"B: (\d+) sockets reset \(drain (\d+), released\)", ran.stdout.strip())
    assert match is not None, ran.stdout
    assert int(match[1]) >= 20

    wait_until(lambda: b.metric("drainctl_testbed_connects_total") >= connects + 20 and b.open_sockets() >= 20,
               what="every reset client to connect to B again")
    report = swarm.stop()
    from_b = [d for d in report["disconnects"] if d["server"] == "B"]
    assert len(from_b) == 20 and all(d["cause"] == "reset" for d in from_b), report["by_cause"]
    drain = controller.get(f"/v1/drains/{match[2]}")["drain"]
    assert (drain["kind"], drain["outcome"], drain["sockets_reset"]) == ("reset", "forced", int(match[1]))
