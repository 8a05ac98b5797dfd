"""Teardown: whatever ends a fleet (normal exit, an exception, Ctrl-C, the harness killed), nothing survives it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.budget import Budget
from testbed.addresses import HostPort, parse_hostport
from testbed.harness import Fleet
from testbed.harness.ports import listening
from testbed.harness.waiting import wait_for
from tests.e2e.programs import need

pytestmark = pytest.mark.e2e

HOLDER = Path(__file__).with_name("fleet_holder.py")


def _gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie waiting for its reaper counts as gone: it holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _assert_nothing_left(pids: list[int], ports: list[HostPort]) -> None:
    assert pids and ports
    alive = [pid for pid in pids if not _gone(pid)]
    assert alive == [], f"processes still alive: {alive}"
    bound = [str(port) for port in ports if listening(port)]
    assert bound == [], f"ports still listening: {bound}"


def test_an_exception_inside_the_fleet_leaves_no_process_port_or_directory() -> None:
    need("haproxy")
    need("prometheus")
    with pytest.raises(RuntimeError, match="the test failed"), Fleet(Budget()) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b])
        fleet.start_prometheus([a, b])
        fleet.start_swarm(lb.ws_url, count=20, duration_s=600).wait_joined(120)
        a.pause()  # a stopped process must be ended too
        pids, ports, workdir = fleet.pids, fleet.ports, fleet.workdir
        assert all(listening(port) for port in ports)
        raise RuntimeError("the test failed")
    _assert_nothing_left(pids, ports)
    assert not workdir.exists()


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[str]]:
    need("haproxy")
    need("prometheus")
    process = subprocess.Popen([sys.executable, str(HOLDER)], stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=60)


def _held(process: subprocess.Popen[str]) -> tuple[list[int], list[HostPort], Path]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the fleet holder exited with {process.wait(timeout=60)} before its fleet was up"
    held = json.loads(line)
    ports = [parse_hostport(text, option="port") for text in held["ports"]]
    return held["pids"], ports, Path(held["workdir"])


def test_ctrl_c_tears_the_fleet_down(holder: subprocess.Popen[str]) -> None:
    pids, ports, workdir = _held(holder)
    holder.send_signal(signal.SIGINT)
    assert holder.wait(timeout=120) != 0
    _assert_nothing_left(pids, ports)
    assert not workdir.exists()


def test_a_killed_harness_takes_its_fleet_with_it(holder: subprocess.Popen[str]) -> None:
    pids, ports, workdir = _held(holder)
    try:
        holder.kill()  # no teardown code runs: the kernel's parent-death signal must end the children
        holder.wait(timeout=60)
        wait_for(lambda: all(_gone(pid) for pid in pids), timeout_s=60, what="the orphaned fleet to die")
        _assert_nothing_left(pids, ports)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # only teardown removes it, and none ran
