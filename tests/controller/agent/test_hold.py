"""The guest's shutdown hold (`drainctl agent hold`, the ExecStop of the agent's unit): it returns only once the
host's drain is verified or forced, bounded by its window; on a plain restart of the agent it does not hold."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from testbed import phoenix
from testbed.harness import Fleet
from testbed.harness.fleet import DRAINCTL
from tests.controller.engine.fakes import async_test
from tests.controller.platform_support import TEST_BUDGET, Host, close_all, open_clients, start_host


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet:
        yield fleet


def hold(host: Host, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*DRAINCTL, "agent", "hold", "--config", str(host.config_path), "--agent-url", host.agent_url, *options]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def fake_systemctl(tmp_path: Path, state: str) -> dict[str, str]:
    """A PATH whose `systemctl is-system-running` prints `state` (systemd is not what is tested here)."""
    bin_dir = tmp_path / f"bin-{state}"
    bin_dir.mkdir()
    stub = bin_dir / "systemctl"
    stub.write_text(f"#!/bin/sh\necho {state}\n")
    stub.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@async_test
async def test_the_hold_opens_a_notice_and_returns_once_the_fallback_drained_the_host(fleet: Fleet) -> None:
    host = start_host(fleet, "vm-a", fallback={"enabled": True, "grace_s": 0.5})
    clients = await open_clients(host.server, 10)

    argv = ["agent", "hold", "--config", str(host.config_path), "--agent-url", host.agent_url, "--window-s", "60"]
    process = await asyncio.create_subprocess_exec(*DRAINCTL, *argv, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)  # the clients answer their close meanwhile

    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["outcome"] == "released"
    [notice] = host.notices()
    assert answer["notices"] == [notice["id"]] and notice["id"].startswith("shutdown/")
    assert (notice["source"], notice["kind"], notice["released_by"]) == ("shutdown", "stop", "agent")
    assert host.connections() == 0, "released only once the kernel count reached zero"
    for ws in clients:
        await ws.wait_closed()
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    await close_all(clients)


def test_the_hold_never_returns_before_the_release_and_gives_up_at_its_window(fleet: Fleet) -> None:
    host = start_host(fleet, "vm-a")  # fallback off, no controller: nobody will release
    host.call("POST", "/v1/notices", json={"id": "n-1", "kind": "terminate", "not_after": 4e9}).raise_for_status()

    result = hold(host, "--window-s", "2")

    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "timed_out" and answer["notices"] == ["n-1"]
    assert answer["held_s"] >= 2.0


def test_on_a_plain_restart_of_the_agent_the_hold_lets_go_at_once(fleet: Fleet, tmp_path: Path) -> None:
    host = start_host(fleet, "vm-a")

    running = hold(host, "--only-at-shutdown", env=fake_systemctl(tmp_path, "running"))

    assert running.returncode == 0 and "not shutting down" in running.stderr
    assert host.notices() == []
    stopping = hold(host, "--only-at-shutdown", "--window-s", "1", env=fake_systemctl(tmp_path, "stopping"))
    assert json.loads(stopping.stdout)["outcome"] == "timed_out", "held while shutting down (nobody released)"


def test_without_an_agent_there_is_nothing_to_hold(fleet: Fleet) -> None:
    host = start_host(fleet, "vm-a")
    host.agent.signal(15)
    host.agent.wait_exit(10)

    result = hold(host)

    assert result.returncode == 0 and "nothing to hold" in result.stderr
    assert json.loads(result.stdout)["outcome"] == "no-agent"
