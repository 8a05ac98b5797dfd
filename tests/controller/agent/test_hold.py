"""The guest's shutdown hold (`drainctl agent hold`, the ExecStop of the agent's unit): it returns only once the
host's drain is verified or forced, bounded by its window; on a plain restart of the agent it does not hold.
With `--notice-id` (Kubernetes' `hold: prestop` hook, id = pod uid) it waits for that notice alone, released by
the controller's `POST /v1/notices/{id}/release` or by the agent's own fallback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest
import yaml

from controller.agent.config import parse_config
from testbed import phoenix
from testbed.harness import Fleet
from testbed.harness.fleet import DRAINCTL
from tests.controller.platforms.support import Host, close_all, open_clients, start_host
from tests.support import REPO_ROOT, TEST_BUDGET, until
from tests.support.tasks import async_test


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


@async_test
async def test_a_prestop_hold_with_the_pod_uid_blocks_until_the_controller_releases_that_notice(fleet: Fleet) -> None:
    host = start_host(fleet, "vm-a")  # fallback off: only the controller's release can end this hold
    host.call("POST", "/v1/notices", json={"id": "other", "kind": "stop", "not_after": 4e9}).raise_for_status()
    argv = ["agent", "hold", "--config", str(host.config_path), "--agent-url", host.agent_url,
            "--notice-id", "pod-uid-1", "--window-s", "60"]
    process = await asyncio.create_subprocess_exec(*DRAINCTL, *argv, stdout=PIPE, stderr=PIPE)
    try:
        opened = await until(lambda: host.notice("pod-uid-1"), what="the hook's notice to be opened")
        assert (opened["state"], opened["kind"], opened["source"]) == ("open", "terminate", "prestop")
        assert opened["not_after"] - opened["seen_at"] == pytest.approx(60.0, abs=5.0)
        assert process.returncode is None, "the hook returned before any release"

        host.call("POST", "/v1/notices/pod-uid-1/release").raise_for_status()  # what PreStopRelease sends
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["outcome"] == "released" and answer["notices"] == ["pod-uid-1"]
    assert answer["held_s"] < 60.0, "released, not timed out"
    assert host.notice("pod-uid-1")["released_by"] == "controller"  # type: ignore[index]
    assert host.notice("other")["state"] == "open", "the hook waits for its own notice only"  # type: ignore[index]


@async_test
async def test_a_prestop_hold_nobody_releases_returns_before_its_window_once_the_fallback_drained(
    fleet: Fleet,
) -> None:
    host = start_host(fleet, "vm-a", fallback={"enabled": True, "grace_s": 0.5})
    clients = await open_clients(host.server, 10)

    argv = ["agent", "hold", "--config", str(host.config_path), "--agent-url", host.agent_url,
            "--notice-id", "pod-uid-2", "--window-s", "60"]
    process = await asyncio.create_subprocess_exec(*DRAINCTL, *argv, stdout=PIPE, stderr=PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)  # the clients answer their close meanwhile

    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["outcome"] == "released" and answer["notices"] == ["pod-uid-2"]
    assert answer["held_s"] < 60.0, "the fallback released before the window (not_after) ended"
    [notice] = host.notices()
    assert (notice["id"], notice["source"], notice["released_by"]) == ("pod-uid-2", "prestop", "agent")
    assert notice["released_at"] < notice["not_after"]
    assert host.connections() == 0, "released only once the kernel count reached zero"
    for ws in clients:
        await ws.wait_closed()
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    await close_all(clients)


EXAMPLE = REPO_ROOT / "deploy" / "kubernetes" / "examples" / "api-prestop.yaml"


@async_test
async def test_the_example_prestop_hook_run_as_written_holds_the_pod_uid_until_the_release(
    fleet: Fleet, tmp_path: Path
) -> None:
    config_map, deployment = yaml.safe_load_all(EXAMPLE.read_text())
    pod = deployment["spec"]["template"]["spec"]
    app = pod["containers"][0]
    assert app["env"] == [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
    shell, flag, script = app["lifecycle"]["preStop"]["exec"]["command"]
    window_s = float(script.split("--window-s ")[1])
    assert window_s < pod["terminationGracePeriodSeconds"], "the hook ends before the kubelet's SIGKILL"
    example_config = parse_config(yaml.safe_load(config_map["data"]["agent.yaml"]), where="api-prestop.yaml")
    assert "token" not in script and example_config.fallback.enabled
    host = start_host(fleet, "vm-a")
    config = yaml.safe_load(host.config_path.read_text())
    config["listen"] = host.agent_url.removeprefix("http://")  # the hook finds the agent through the config
    config_path = tmp_path / "agent.yaml"
    config_path.write_text(yaml.safe_dump(config))
    script = script.replace("/etc/drainctl/agent.yaml", str(config_path))
    bin_dir = Path(sys.executable).parent  # the venv's `drainctl` console script, as on the image's PATH
    env = {**os.environ, "POD_UID": "9f1c-uid", "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    process = await asyncio.create_subprocess_exec(shell, flag, script, stdout=PIPE, stderr=PIPE, env=env)
    try:
        await until(lambda: host.notice("9f1c-uid"), what="the hook's notice, named by the pod uid")
        host.call("POST", "/v1/notices/9f1c-uid/release").raise_for_status()
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["outcome"] == "released"


def test_the_hold_route_takes_a_not_after_only_with_a_notice_id(fleet: Fleet) -> None:
    host = start_host(fleet, "vm-a")

    alone = host.call("POST", "/v1/shutdown-hold", json={"not_after": 4e9})
    both = host.call("POST", "/v1/shutdown-hold", json={"notice_id": "u", "not_after": 4e9, "window_s": 1})

    assert (alone.status_code, both.status_code) == (400, 400)
    assert "not_after needs notice_id" in alone.json()["error"]
    assert host.notices() == [], "a refused hold opens nothing"
    not_after = time.time() + 1.5
    held = host.call("POST", "/v1/shutdown-hold", json={"notice_id": "u", "not_after": not_after}).json()
    assert held["outcome"] == "timed_out" and held["notices"] == ["u"]  # fallback off: nobody released
    assert host.notice("u")["not_after"] == not_after  # type: ignore[index]


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
