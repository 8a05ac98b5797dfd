"""The on-call CLI's operations habits, through the real `drainctl` against a real controller on loopback.

The controller's instances have node agents that do not answer (nothing listens at their addresses), and a
long verify window: a drain of one counts nothing, is forced at its deadline and then retries the reset for
`VERIFY_S`, long enough to look at it. What on-call would notice: `--version`; one `drainctl:` line for every
usage error; completion; `-o json|yaml|wide`; RFC 3339 times; `status INSTANCE` and `show DRAIN`; `cancel`
before a reset (and its refusal after); a joined drain naming the options it did not apply; a retried drain
(its answer lost) being one drain; and, in tmux on an 80-column terminal, the live line of `drain --wait`
naming the failing agent while it fails.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.budget import Budget
from testbed.harness import Fleet
from testbed.harness.fleet import DRAINCTL
from testbed.harness.ports import free_port
from tests.controller.api.stacks import Controller, Ran, Stack, drainctl
from tests.controller.oncall.conftest import Cli
from tests.support import AGENT_TOKEN, wait_until, write_secret

pytestmark = pytest.mark.e2e

VERIFY_S = 60.0
"""A forced drain of an unreachable agent retries its reset this long: the failure lasts while we look."""
RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?([+-]\d\d:\d\d|Z)"
INSTANCES = ("D", "E", "F", "G", "H", "J")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("operations")
    budget = Budget(verify_s=VERIFY_S, margin_s=5.0, platform_notice_s=600.0)
    with Fleet(budget, workdir=workdir / "fleet") as fleet:
        stack = Stack(fleet, workdir)
        token = write_secret(workdir / "agent.token", AGENT_TOKEN)
        config = stack.controller_config([], budget=budget.as_dict())
        config["instances"] = {name: {"pool": name, "agent_url": f"http://127.0.0.1:{free_port().port}",
                                      "agent_token_file": str(token)} for name in INSTANCES}
        stack.start_controller(config)
        yield stack


@pytest.fixture
def controller(stack: Stack) -> Controller:
    return stack.controllers[0]


def _one_line(ran: Ran, code: int) -> str:
    lines = ran.stderr.strip().splitlines()
    assert ran.code == code, (ran.code, ran.stdout, ran.stderr)
    assert len(lines) == 1 and lines[0].startswith("drainctl: "), ran.stderr
    return lines[0]


def _status(controller: Controller, name: str) -> dict[str, Any]:
    body: dict[str, Any] = controller.get(f"/v1/instances/{name}")
    return body


# --- the command itself -----------------------------------------------------------------------------------------


def test_version_is_the_installed_packages() -> None:
    for args in (["--version"], ["version"]):
        ran = drainctl(*args)
        assert (ran.code, ran.stdout.strip()) == (0, f"drainctl {version('drainctl')}"), ran


def test_every_usage_error_is_one_line_with_exit_2() -> None:
    cases = {
        ("drain",): "drainctl: drain: Missing argument",
        ("drain", "D", "--bogus"): "drainctl: drain: No such option: --bogus",
        ("status", "-o", "xml"): "drainctl: status: Invalid value for '--output' / '-o'",
        ("show", "x"): "drainctl: show: Invalid value for 'drain'",
        ("nope",): "drainctl: No such command 'nope'.",
        ("status", "--json", "-o", "yaml"): "drainctl: --json and -o yaml: choose one",
    }
    for args, start in cases.items():
        line = _one_line(drainctl(*args, env={"DRAINCTL_TOKEN_FILE": "/nonexistent"}), 2)
        assert line.startswith(start), (args, line)


def test_help_shows_the_defaults_that_depend_on_the_budget() -> None:
    ran = drainctl("drain", "--help", env={"COLUMNS": "200"})
    assert ran.code == 0
    assert "[default: (the budget's drain_deadline_s)]" in ran.stdout
    assert "[default: (the budget's drain_rate_per_s)]" in ran.stdout


def test_shell_completion_completes_commands() -> None:
    env = {"_DRAINCTL_COMPLETE": "complete_bash", "COMP_WORDS": "drainctl ca", "COMP_CWORD": "1"}
    ran = drainctl(env=env)
    assert (ran.code, ran.stdout.split()) == (0, ["cancel"]), ran
    script = drainctl("--show-completion", "bash")
    assert script.code == 0 and "_DRAINCTL_COMPLETE=complete_bash" in script.stdout


# --- reading --------------------------------------------------------------------------------------------------------


def test_output_formats_and_rfc3339_times(controller: Controller) -> None:
    started = drainctl("drain", "E", "--deadline", "300", "--json", controller=controller)
    drain_id = started.json()["drain"]["id"]
    as_json = drainctl("status", "-o", "json", controller=controller).json()
    assert drainctl("status", "--json", controller=controller).json()["instances"][0]["instance"] == "D"
    as_yaml = yaml.safe_load(drainctl("status", "-o", "yaml", controller=controller).stdout)
    assert [i["instance"] for i in as_yaml["instances"]] == [i["instance"] for i in as_json["instances"]]
    wide = drainctl("status", "-o", "wide", controller=controller)
    assert wide.code == 0 and "PLATFORM DEADLINE" in wide.stdout and "ERROR" in wide.stdout
    history = drainctl("history", "-o", "wide", "--instance", "E", controller=controller)
    assert re.search(rf"│ {drain_id}\s+│ E\s+│ manual\s+│ manual\s+│ {RFC3339}", history.stdout), history.stdout
    assert "ENDED" in history.stdout

    described = drainctl("status", "E", controller=controller).stdout
    assert re.search(r"^Phase:\s+verifying$", described, re.M), described
    assert re.search(rf"^Reset at:\s+{RFC3339}$", described, re.M), described
    assert re.search(r"^Error now:\s+counting: agent http://127\.0\.0\.1:\d+/? unreachable", described, re.M)
    assert re.search(rf"^  {RFC3339}  verifying\s+drain request failed: agent", described, re.M), described
    assert yaml.safe_load(drainctl("status", "E", "-o", "yaml", controller=controller).stdout)["drain_id"] == drain_id

    timeline = drainctl("show", str(drain_id), controller=controller, env={"COLUMNS": "200"}).stdout
    rows = [line for line in timeline.splitlines() if re.match(rf"│ {RFC3339}", line)]
    steps = [re.split(r"\s*│\s*", row)[4] for row in rows]
    assert steps[:3] == ["event accepted", "drain requested", "drain request failed"], timeline
    assert "pending -> draining" in rows[1] and "draining -> verifying" in rows[2]
    assert drainctl("show", str(drain_id), "-o", "json", controller=controller).json()["drain"]["id"] == drain_id
    assert "unknown drain '999999'" in _one_line(drainctl("show", "999999", controller=controller), 2)
    drainctl("cancel", "E", controller=controller)


def test_a_context_reaches_the_controller_and_what_is_typed_wins(
    controller: Controller, cli: Cli, tmp_path: Path
) -> None:
    nowhere = f"http://{free_port()}"
    write_secret(tmp_path / "wrong.token", "not-the-controller-token")
    contexts = tmp_path / "contexts.yaml"
    contexts.write_text(yaml.safe_dump({"current": "elsewhere", "contexts": {
        "here": {"url": controller.url, "token_file": str(controller.token_file)},
        "elsewhere": {"url": nowhere, "token_file": str(controller.token_file)},
        "wrong-token": {"url": controller.url, "token_file": "wrong.token"},
    }}), encoding="utf-8")
    env = {"DRAINCTL_CONTEXTS": str(contexts)}
    ran = drainctl("--context", "here", "status", "-o", "json", env=env)  # the console script, as on a laptop
    assert ran.code == 0 and [i["instance"] for i in ran.json()["instances"]] == list(INSTANCES), ran.stderr

    def instances(*args: str, **more: str) -> list[str]:
        ran = cli(*args, "-o", "json", env={**env, **more})
        assert ran.code == 0, (args, ran.stderr)
        return [i["instance"] for i in ran.json()["instances"]]

    assert instances("status", DRAINCTL_CONTEXT="here") == list(INSTANCES)
    assert instances("--context", "here", "status", DRAINCTL_CONTROLLER=nowhere) == list(INSTANCES)
    assert instances("status", "--controller", controller.url) == list(INSTANCES)  # over `current: elsewhere`
    assert instances("--context", "wrong-token", "status", "--token-file", str(controller.token_file))
    refused = cli("--context", "wrong-token", "status", env=env)
    line = _one_line(refused, 2)
    assert "refused the token" in line and f"context 'wrong-token' in {contexts}" in line
    assert "not-the-controller-token" not in refused.stdout + refused.stderr
    assert f"cannot reach the controller at {nowhere}" in _one_line(cli("status", env=env), 1)


# --- writing --------------------------------------------------------------------------------------------------------


def test_cancel_before_a_reset_ends_the_drain_and_is_journaled(controller: Controller) -> None:
    started = drainctl("drain", "F", "--deadline", "300", "--json", controller=controller).json()
    ran = drainctl("cancel", "F", controller=controller)
    assert ran.code == 0, ran
    assert ran.stdout.strip() == (f"F: drain {started['drain']['id']} cancelled (cancelled): nothing more is done "
                                  "to the host (sockets the app closed stay closed)")
    status = _status(controller, "F")
    assert (status["phase"], status["outcome"], status["finished"]) == ("cancelled", "cancelled", True)
    steps = [line["step"] for line in controller.get(f"/v1/drains/{status['drain_id']}")["journal"]]
    assert steps[-1] == "cancelled by operator"
    again = _one_line(drainctl("cancel", "F", controller=controller), 1)
    assert again == f"drainctl: F has no running drain to cancel (its last drain, {status['drain_id']}, is cancelled)"


def test_a_cancelled_platform_notice_is_left_to_its_deadline(controller: Controller) -> None:
    not_after = time.time() + 300
    pushed = controller.request("POST", "/v1/events", json={"instance": "G", "kind": "terminate",
                                                            "not_after": not_after, "id": "notice-g"})
    assert pushed.status_code == 202, pushed.text
    ran = drainctl("cancel", "G", controller=controller)
    assert ran.code == 0, ran
    assert re.search(rf"the platform's notice is left to its deadline \(released at {RFC3339}\)", ran.stdout)
    status = _status(controller, "G")
    assert (status["phase"], status["finished"]) == ("cancelled", False)
    assert status["drain"]["released_at"] is None and status["drain"]["release_by"] <= not_after


def test_a_joined_drain_names_the_options_it_did_not_apply(controller: Controller) -> None:
    first = drainctl("drain", "H", "--deadline", "200", "--rate", "100", controller=controller)
    assert first.code == 0, first
    joined = drainctl("drain", "H", "--deadline", "400", "--rate", "50", controller=controller)
    assert joined.code == 0, joined
    line = joined.stdout.strip()
    assert re.fullmatch(r"H: already in drain \d+ \(manual, verifying\); this request joined it; not applied: "
                        r"--rate 50 \(drain \d+ goes on at 100/s\); --deadline 400 \(drain \d+ resets what is left "
                        r"sooner, in \d+\.\d s\)", line), line
    tighter = drainctl("drain", "H", "--deadline", "100", "--json", controller=controller).json()
    assert tighter["disposition"] == "merged" and tighter["not_applied"] == []
    as_json = drainctl("drain", "H", "--rate", "50", "--json", controller=controller).json()
    assert [item["option"] for item in as_json["not_applied"]] == ["rate_per_s"]
    drainctl("cancel", "H", controller=controller)


class DropFirstAnswer:
    """A TCP proxy on loopback in front of the controller that forwards the first request and then closes the
    client's connection without its answer (a timeout, as the CLI sees it); later connections pass through."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            client, _ = self._server.accept()
            threading.Thread(target=self._one, args=(client,), daemon=True).start()

    def _one(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._target) as upstream:
            request = _whole_request(client)
            self.requests.append(request)
            upstream.sendall(request)
            answer = upstream.recv(65536)  # the controller has taken the request
            if len(self.requests) > 1:
                client.sendall(answer)


def _whole_request(client: socket.socket) -> bytes:
    """One HTTP request: its head, then as many body bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += client.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_drain_whose_answer_was_lost_is_retried_as_one_drain(controller: Controller) -> None:
    proxy = DropFirstAnswer(controller.url)
    ran = drainctl("drain", "J", "--deadline", "300", controller=controller, env={"DRAINCTL_CONTROLLER": proxy.url})
    assert ran.code == 0, ran
    assert re.fullmatch(r"J: this request was already received \(drain \d+, verifying\)", ran.stdout.strip()), ran
    bodies = [json.loads(request.split(b"\r\n\r\n", 1)[1]) for request in proxy.requests]
    assert len(bodies) == 2 and bodies[0]["request_id"] == bodies[1]["request_id"]
    assert len(controller.get("/v1/history?instance=J")["drains"]) == 1
    drainctl("cancel", "J", controller=controller)


# --- the live line, on a terminal -----------------------------------------------------------------------------------


def _screen(session: str) -> str:
    """What the tmux session's terminal shows now (wrapped lines joined: a line longer than 80 shows as such)."""
    return subprocess.run(["tmux", "-L", session, "capture-pane", "-p", "-J", "-t", session], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make setup installs it)")
def test_drain_wait_in_tmux_names_the_failing_agent_while_it_fails(controller: Controller, tmp_path: Path) -> None:
    session = f"drainctl-{free_port().port}"
    command = " ".join([*(f"'{part}'" for part in DRAINCTL), "drain", "D", "--wait", "--deadline", "1"])
    env = [f"DRAINCTL_CONTROLLER={controller.url}", f"DRAINCTL_TOKEN_FILE={controller.token_file}"]
    subprocess.run(["tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "80", "-y", "24",
                    "env", *env, "sh", "-c", f"{command}; sleep 600"], check=True)
    try:
        def failing() -> str | None:
            screen = _screen(session)
            found = re.search(r"^D forcing: agent 127\.0\.0\.1:\d+ unreachable.*\(retry \d+\)", screen, re.M)
            return screen if found else None

        screen = wait_until(failing, what="the live line naming D's unreachable agent while forcing")
        lines = [line for line in screen.splitlines() if line.strip()]
        live = [line for line in lines if line.startswith("D forcing")]
        assert len(live) == 1 and len(live[0]) <= 80, lines  # one line, updated in place, within 80 columns
        assert lines[0].startswith("D: drain ") and "started (manual)" in lines[0], lines
        refused = _one_line(drainctl("cancel", "D", controller=controller), 1)
        assert re.fullmatch(r"drainctl: drain \d+ of D is forcing: too late to cancel, its reset has begun "
                            r"\(a reset cannot be undone\)", refused), refused
    finally:
        subprocess.run(["tmux", "-L", session, "kill-server"], check=False)
