"""A real controller stack for the API and on-call tests: servers, their node agents, `drainctl run`, the CLI.

Everything is a real process started through `testbed.harness.Fleet` (torn down with the fleet, even on
failure); agent.yaml and controller.yaml are written into the test's own directory. Nothing waits with a
fixed sleep: starts wait for ready lines, tests poll conditions with generous deadlines.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import sqlite3
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testbed.harness import Fleet, ServerProcess
from testbed.harness.fleet import DRAINCTL
from testbed.harness.supervising import Supervised
from tests.support import AGENT_TOKEN, API_TOKEN, write_secret

START_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 120.0

def sample_sum(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none), in exposition text."""
    wanted = dict(labels or {})
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted.items() <= sample.labels.items()
    )


@dataclass
class Agent:
    name: str
    url: str
    process: Supervised
    token_file: Path

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        text = httpx.get(f"{self.url}/metrics", headers={"Authorization": f"Bearer {AGENT_TOKEN}"}, timeout=10,
                         trust_env=False).text
        return sample_sum(text, name, labels)

    def post_notice(self, notice_id: str, kind: str, not_after: float) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/v1/notices", json={"id": notice_id, "kind": kind, "not_after": not_after},
                              headers={"Authorization": f"Bearer {AGENT_TOKEN}"}, timeout=10, trust_env=False)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def notice(self, notice_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/v1/notices/{notice_id}", headers={"Authorization": f"Bearer {AGENT_TOKEN}"},
                             timeout=10, trust_env=False)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@dataclass
class Controller:
    process: Supervised
    url: str
    token_file: Path
    journal: Path

    def request(self, method: str, path: str, *, token: str | None = API_TOKEN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, trust_env=False, **kwargs)

    def get(self, path: str) -> Any:
        response = self.request("GET", path)
        assert response.status_code == 200, response.text
        return response.json()

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return sample_sum(self.request("GET", "/metrics").text, name, labels)

    def journal_lines(self) -> list[tuple[Any, ...]]:
        """Every episode, event and journal line on disk, read straight from the SQLite file (not the API)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)) as db:
            tables = ("drains", "events", "transitions")
            return [(table, *row) for table in tables for row in db.execute(f"SELECT * FROM {table}")]


@dataclass
class Stack:
    """A fleet plus the drainctl processes of one test module."""

    fleet: Fleet
    workdir: Path
    agents: dict[str, Agent] = field(default_factory=dict)
    controllers: list[Controller] = field(default_factory=list)

    def server(self, name: str) -> ServerProcess:
        return self.fleet.servers[name]

    def start_agent(self, server: ServerProcess) -> Agent:
        token_file = write_secret(self.workdir / f"agent-{server.name}.token", AGENT_TOKEN)
        app_token_file = write_secret(self.workdir / f"app-{server.name}.token", server.admin_token)
        config = {
            "listen": "127.0.0.1:0",
            "token_file": str(token_file),
            "service_port": server.listen.port,
            "service_address": server.listen.host,
            "instance": server.name,
            "app": {"drain_url": f"{server.admin_url}/admin/drain", "token_file": str(app_token_file),
                    "timeout_s": 1.0},
            "fallback": {"enabled": False},
        }
        path = self.workdir / f"agent-{server.name}.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        process = self.fleet.start_command(f"agent-{server.name}", [*DRAINCTL, "agent", "--config", str(path)])
        ready = process.wait_event("ready", START_TIMEOUT_S)
        agent = Agent(server.name, f"http://{ready['listen']}", process, token_file)
        self.agents[server.name] = agent
        return agent

    def controller_config(self, agents: Sequence[Agent], **overrides: Any) -> dict[str, Any]:
        index = len(self.controllers)
        config: dict[str, Any] = {
            "journal": str(self.workdir / f"journal-{index}.sqlite"),
            "instances": {
                agent.name: {"pool": "web", "agent_url": agent.url, "agent_token_file": str(agent.token_file)}
                for agent in agents
            },
            "api": {"listen": "127.0.0.1:0",
                    "token_file": str(write_secret(self.workdir / "api.token", API_TOKEN))},
            "sources": {"local": {"enabled": True, "poll_interval_s": 0.5}},
            "engine": {"poll_interval_s": 0.2, "retry_initial_s": 0.2, "retry_max_s": 1.0},
        }
        config.update(overrides)
        return config

    def start_controller(self, config: Mapping[str, Any]) -> Controller:
        index = len(self.controllers)
        path = self.workdir / f"controller-{index}.yaml"
        path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        process = self.fleet.start_command(f"controller-{index}", [*DRAINCTL, "run", "--config", str(path)])
        ready = process.wait_event("ready", START_TIMEOUT_S)
        assert ready["pid"] == process.pid
        controller = Controller(process, f"http://{ready['api']}", Path(config["api"]["token_file"]),
                                Path(config["journal"]))
        self.controllers.append(controller)
        return controller


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def drainctl(*args: str, controller: Controller | None = None, env: Mapping[str, str] | None = None,
             stdin: str | None = None, timeout_s: float = CLI_TIMEOUT_S) -> Ran:
    """Run the `drainctl` CLI in a child process, pointed at `controller` through its environment variables."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DRAINCTL_")}
    if controller is not None:
        environment.update(DRAINCTL_CONTROLLER=controller.url, DRAINCTL_TOKEN_FILE=str(controller.token_file))
    environment.update(env or {})
    result = subprocess.run([*DRAINCTL, *args], capture_output=True, text=True, env=environment,
                            input=stdin if stdin is not None else "", timeout=timeout_s, check=False)
    return Ran(result.returncode, result.stdout, result.stderr)


def drainctl_on_a_terminal(*args: str, controller: Controller, answer: bytes, timeout_s: float = 60.0) -> Ran:
    """Run the CLI on a pseudo-terminal (as a person would) and type `answer` when it asks "[y/N]"."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes drainctl, its stdin/stdout/stderr on the terminal
        try:
            env = {**os.environ, "DRAINCTL_CONTROLLER": controller.url,
                   "DRAINCTL_TOKEN_FILE": str(controller.token_file)}
            os.execve(DRAINCTL[0], [*DRAINCTL, *args], env)
        finally:
            os._exit(127)  # only if exec failed: never run the test process twice
    output, answered, deadline = b"", False, time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closes when the child exits
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(fd, answer)
                answered = True
    finally:
        os.close(fd)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace").replace("\r\n", "\n")
    return Ran(os.waitstatus_to_exitcode(status), text, text)
