"""`drainctl run --check` and `drainctl agent --check`: a config the daemon would run says `ok` and exits 0; a
broken one is one `drainctl:` line and exit 2, and nothing is started (no socket, no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controller.agent.conftest import agent_config
from tests.support.checking import Outcome, check
from tests.support.tokens import API_TOKEN, write_secret


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _controller(tmp_path: Path) -> dict[str, Any]:
    token = write_secret(tmp_path / "api-token", API_TOKEN)
    return {
        # Nothing listens here and no database runs: --check must not connect.
        "journal": "postgresql://drainctl@127.0.0.1:1/drainctl?sslmode=require",
        "leader": {"kind": "postgres", "holder": "ctl-a", "advertise_url": "http://10.0.0.250:9300"},
        "api": {"listen": "10.0.0.250:9300", "token_file": str(token), "push_token_file": str(token)},
    }


def _refused(outcome: Outcome, *needles: str) -> None:
    assert outcome.code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drainctl: "), outcome.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]
    assert outcome.stdout == ""


def test_run_check_accepts_a_config_the_daemon_would_run(tmp_path: Path) -> None:
    outcome = check("run", _write(tmp_path / "controller.yaml", _controller(tmp_path)))

    assert (outcome.code, outcome.stdout, outcome.stderr) == (0, "ok\n", "")


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"api": None}, ["api: required"]),
        ({"journal": "postgresql://drainctl:hunter2@db/drainctl"}, ["journal: the URL holds a password"]),
        ({"journal": "mysql://db/drainctl"}, ["no mysql journal"]),
        ({"journal": "/var/lib/drainctl/journal.sqlite"}, ["leader: kind postgres needs the shared journal"]),
        ({"budget": {"drain_deadlin_s": 30}}, ["drain_deadlin_s"]),
        ({"api": {"listen": "10.0.0.250:9300", "token_file": "/nonexistent/api-token"}}, ["/nonexistent/api-token"]),
    ],
    ids=["no-api", "password-in-url", "unknown-scheme", "postgres-leader-on-sqlite", "typo", "missing-token"],
)
def test_run_check_refuses_a_broken_config_in_one_line(
    tmp_path: Path, change: dict[str, Any], needles: list[str]
) -> None:
    config = {key: value for key, value in {**_controller(tmp_path), **change}.items() if value is not None}

    _refused(check("run", _write(tmp_path / "controller.yaml", config)), "controller.yaml", *needles)


def test_agent_check_accepts_a_config_the_agent_would_run(tmp_path: Path) -> None:
    config = agent_config(tmp_path, service_port=4000, drain_url="http://127.0.0.1:4001/admin/drain")

    outcome = check("agent", _write(tmp_path / "agent.yaml", config))

    assert (outcome.code, outcome.stdout, outcome.stderr) == (0, "ok\n", "")


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"service_port": "web"}, ["service_port"]),
        ({"controllers": ["http://10.0.0.250:9300"]}, ["controllers: needs push"]),
        ({"token_file": "/nonexistent/agent-token"}, ["token_file", "/nonexistent/agent-token"]),
    ],
    ids=["wrong-type", "push-without-token", "missing-token"],
)
def test_agent_check_refuses_a_broken_config_in_one_line(
    tmp_path: Path, change: dict[str, Any], needles: list[str]
) -> None:
    config = {**agent_config(tmp_path, service_port=4000, drain_url="http://127.0.0.1:4001/admin/drain"), **change}

    _refused(check("agent", _write(tmp_path / "agent.yaml", config)), "agent.yaml", *needles)
