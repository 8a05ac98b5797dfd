"""The swarm command against the real reference server, both as subprocesses on loopback (no load balancer).

Each test starts `drainctl testbed server` and `drainctl testbed clients` exactly as a harness would, waits for
their JSON events and for conditions it can observe from outside (the server's /metrics, the kernel's socket
table through `ss`), and reads the swarm's report. Every process is stopped in a `finally`, also a stopped one.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_until

DRAINCTL = str(Path(sys.executable).with_name("drainctl"))
WAIT_S = 60.0
"""Generous bound for anything the tests wait for: two cores are shared with other engineers' test runs."""
ADMIN_TOKEN = "swarm-test-admin-token"


class Process:
    """A drainctl subprocess whose stdout JSON events are collected by a reader thread."""

    def __init__(self, args: list[str], stderr_path: Path) -> None:
        self.args = args
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: list[str] = []
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            if line.startswith("{"):
                self._events.put(json.loads(line))

    def event(self, name: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
        deadline_s = time.monotonic() + timeout_s
        while (left_s := deadline_s - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=min(left_s, 0.5))
            except queue.Empty:
                if self.popen.poll() is not None and self._events.empty():
                    break
                continue
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name!r} event from {self.args[1:4]}; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signum)

    def stop(self) -> None:
        """SIGCONT (in case it was stopped), SIGTERM, then SIGKILL if it does not exit."""
        try:
            if self.popen.poll() is None:
                self.signal(signal.SIGCONT)
                self.signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=20)
        finally:
            self._stderr.close()


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every process a test starts; all are stopped at the end, whatever happened."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            process.stop()


class Server:
    def __init__(self, process: Process, ready: dict[str, Any]) -> None:
        self.process = process
        self.listen: str = ready["listen"]
        self.admin: str = ready["admin"]
        self.port = int(self.listen.rpartition(":")[2])
        self.url = f"ws://{self.listen}"

    def drain(self, rate_per_s: float) -> None:
        response = httpx.post(f"http://{self.admin}/admin/drain", json={"rate_per_s": rate_per_s},
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=WAIT_S)
        assert response.status_code == 202, response.text

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://{self.listen}/metrics", timeout=WAIT_S).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        raise AssertionError(f"metric {name}{labels} not exposed")


@pytest.fixture
def start_server(processes: list[Process], tmp_path: Path) -> Callable[..., Server]:
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN)

    def start(name: str, *extra: str, listen: str = "127.0.0.1:0") -> Server:
        args = [DRAINCTL, "testbed", "server", "--listen", listen, "--admin", "127.0.0.1:0",
                "--admin-token-file", str(token_file), "--name", name, *extra]
        process = Process(args, tmp_path / f"server-{name}-{len(processes)}.err")
        processes.append(process)
        return Server(process, process.event("ready"))

    return start


class Swarm:
    def __init__(self, process: Process, report: Path) -> None:
        self.process = process
        self.report_path = report

    def finish(self, *, terminate: bool = True) -> dict[str, Any]:
        """End the run with SIGTERM (or wait for its duration), check the exit, return the report."""
        if terminate:
            self.process.signal(signal.SIGTERM)
        event = self.process.event("report")
        assert self.process.popen.wait(timeout=WAIT_S) == 0, self.process.stderr()
        assert event["path"] == str(self.report_path)
        report: dict[str, Any] = json.loads(self.report_path.read_text())
        return report


@pytest.fixture
def start_swarm(processes: list[Process], tmp_path: Path) -> Callable[..., Swarm]:
    def start(url: str, *, count: int, interval_s: float = 0.5, timeout_s: float = 3.0, duration_s: float = 600.0,
              prefix: str = "client", extra: tuple[str, ...] = ()) -> Swarm:
        report = tmp_path / f"report-{len(processes)}.json"
        args = [DRAINCTL, "testbed", "clients", "--url", url, "--count", str(count),
                "--heartbeat-interval", str(interval_s), "--heartbeat-timeout", str(timeout_s),
                "--duration", str(duration_s), "--report", str(report), "--token-prefix", prefix, *extra]
        process = Process(args, tmp_path / f"swarm-{len(processes)}.err")
        processes.append(process)
        return Swarm(process, report)

    return start


StartServer = Callable[..., "Server"]
StartSwarm = Callable[..., "Swarm"]


def established(*, pid: int, remote_port: int) -> set[int]:
    """Local ports of `pid`'s established TCP sockets to `remote_port`, as the kernel lists them (`ss`)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( dport = :{remote_port} )"],
                         capture_output=True, text=True, check=True).stdout
    return {int(line.split()[2].rpartition(":")[2]) for line in out.splitlines() if f"pid={pid}," in line}


def queued_requests(port: int) -> int:
    """Server-side sockets on `port` holding unread bytes: handshakes waiting for a stopped server."""
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[0]) > 0 for line in out.splitlines())


# --- tests -----------------------------------------------------------------------------------------------------


def test_clients_join_and_their_heartbeats_keep_them_connected(
    start_server: StartServer, start_swarm: StartSwarm
) -> None:
    # The server cuts sockets silent for 1.5 s; only heartbeats every 0.3 s keep the clients on it for 5 s.
    server = start_server("A", "--idle-timeout", "1.5")
    swarm = start_swarm(server.url, count=20, interval_s=0.3, timeout_s=3.0, duration_s=5.0)
    assert swarm.process.event("joined") == {"event": "joined", "count": 20}
    report = swarm.finish(terminate=False)  # ends by itself after --duration
    assert report["clients"] == 20
    assert report["disconnects"] == []
    assert report["connected_at_end"] == 20
    assert report["servers_at_end"] == {"A": 20}
    assert report["connect_attempts"] == 20
    assert [c["joins"] for c in report["per_client"]] == [1] * 20
    assert server.metric("drainctl_testbed_disconnects_total", reason="idle_timeout") == 0
    assert any("client swarm" in line for line in swarm.process.lines)  # the printed summary


def test_drain_closes_every_client_with_1012_and_they_keep_retrying(
    start_server: StartServer, start_swarm: StartSwarm
) -> None:
    server = start_server("A")
    swarm = start_swarm(server.url, count=20)
    swarm.process.event("joined")
    server.drain(rate_per_s=100)
    wait_until(lambda: server.metric("drainctl_testbed_disconnects_total", reason="drain") == 20, what="the drain")
    # Without a load balancer the clients come back to the draining server: refused, and they retry.
    wait_until(lambda: server.metric("drainctl_testbed_connects_rejected_total", reason="draining") >= 40,
               what="two refused reconnects per client on average")
    report = swarm.finish()
    refused = server.metric("drainctl_testbed_connects_rejected_total", reason="draining")
    assert report["by_cause"] == {"close:1012": 20}
    assert {(d["cause"], d["code"], d["server"]) for d in report["disconnects"]} == {("close", 1012, "A")}
    assert sorted(d["client"] for d in report["disconnects"]) == list(range(20))
    assert 40 <= report["rejected_503"] <= refused
    assert report["refused_draining"] == report["rejected_503"], "every 503 here is the draining server's own"
    assert report["rate_limited"] == 0  # a draining 503 carries no Retry-After
    assert report["connected_at_end"] == 0
    assert report["offline_s"]["never_rejoined"] == 20
    assert all(d["offline_s"] is None for d in report["disconnects"])


def test_clients_of_a_killed_server_reconnect_to_its_replacement(
    start_server: StartServer, start_swarm: StartSwarm
) -> None:
    server_a = start_server("A")
    swarm = start_swarm(server_a.url, count=20)
    swarm.process.event("joined")
    server_a.process.signal(signal.SIGKILL)  # no close frames: the kernel just ends the connections
    server_a.process.popen.wait(timeout=WAIT_S)
    server_b = start_server("B", listen=server_a.listen)
    wait_until(lambda: server_b.metric("drainctl_testbed_open_sockets") == 20, what="every client on B")
    report = swarm.finish()
    assert report["by_cause"] == {"reset": 20}
    assert {d["server"] for d in report["disconnects"]} == {"A"}
    assert report["servers_at_end"] == {"B": 20}
    assert report["offline_s"]["count"] == 20
    assert report["offline_s"]["never_rejoined"] == 0
    assert 0 < report["offline_s"]["p50"] <= report["offline_s"]["p99"] <= report["offline_s"]["max"]
    assert all(c["joins"] == 2 and c["server"] == "B" for c in report["per_client"])


def test_a_wedged_server_is_detected_only_by_clients_with_a_heartbeat_timeout(
    start_server: StartServer, start_swarm: StartSwarm
) -> None:
    server = start_server("A")
    detecting = start_swarm(server.url, count=20, interval_s=0.5, timeout_s=2.0, prefix="detect",
                            extra=("--connect-timeout", "1"))
    stuck = start_swarm(server.url, count=20, interval_s=0.5, timeout_s=0, prefix="stuck")
    detecting.process.event("joined")
    stuck.process.event("joined")
    detecting_ports = established(pid=detecting.process.popen.pid, remote_port=server.port)
    stuck_ports = established(pid=stuck.process.popen.pid, remote_port=server.port)
    assert len(detecting_ports) == len(stuck_ports) == 20
    stopped_at = time.time()
    server.process.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: not detecting_ports & established(pid=detecting.process.popen.pid,
                                                             remote_port=server.port),
                   what="the detecting clients to abort their sockets")
        assert established(pid=stuck.process.popen.pid, remote_port=server.port) >= stuck_ports
        detected = detecting.finish()
        undetected = stuck.finish()
    finally:
        server.process.signal(signal.SIGCONT)
    first: dict[int, dict[str, Any]] = {}
    for d in detected["disconnects"]:
        first.setdefault(d["client"], d)
    assert sorted(first) == list(range(20))
    assert {d["cause"] for d in first.values()} == {"heartbeat_timeout"}
    assert all(d["server"] == "A" for d in first.values())
    # Not before the server went silent, and within the 2 s timeout plus a generous scheduling bound.
    assert all(stopped_at <= d["at"] <= stopped_at + 2.0 + 10.0 for d in first.values())
    assert undetected["disconnects"] == []
    assert undetected["connected_at_end"] == 20  # still "connected" to a server that answers nothing


def test_rate_limited_connects_are_the_503s_with_retry_after(
    start_server: StartServer, start_swarm: StartSwarm
) -> None:
    # Two swarms with the same tokens reach a stopped server; when it continues it sees both handshakes of each
    # token at once: one is admitted, the other refused with 503 + Retry-After: 1, and comes back after it.
    server = start_server("A")
    server.process.signal(signal.SIGSTOP)
    try:
        first = start_swarm(server.url, count=5, prefix="same", extra=("--connect-timeout", "120"))
        second = start_swarm(server.url, count=5, prefix="same", extra=("--connect-timeout", "120"))
        wait_until(lambda: queued_requests(server.port) == 10, what="ten handshakes queued at the stopped server")
    finally:
        server.process.signal(signal.SIGCONT)
    first.process.event("joined")
    second.process.event("joined")
    reports = [first.finish(), second.finish()]
    limited = server.metric("drainctl_testbed_connects_rejected_total", reason="rate_limited")
    assert limited >= 1
    assert sum(r["rate_limited"] for r in reports) == limited
    assert sum(r["rejected_503"] for r in reports) == limited
    assert sum(sum(c["rate_limited"] for c in r["per_client"]) for r in reports) == limited
    assert all(r["rate_limited_max_per_client"] <= 1 for r in reports)
    assert all(r["connected_at_end"] == 5 for r in reports)  # the refused ones came back after Retry-After


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--url", "not a url"], "--url"),
        (["--url", "ws://127.0.0.1:99999"], "--url"),
        (["--count", "0"], "--count"),
        (["--heartbeat-interval", "2", "--heartbeat-timeout", "1"], "--heartbeat-timeout"),
        (["--heartbeat-interval", "2", "--heartbeat-timeout", "2"], "--heartbeat-timeout"),
        (["--report", "/nonexistent-dir/report.json"], "--report"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(flags: list[str], message: str, tmp_path: Path) -> None:
    defaults = {"--url": "ws://127.0.0.1:9", "--count": "1", "--heartbeat-interval": "1",
                "--heartbeat-timeout": "3", "--duration": "1", "--report": str(tmp_path / "r.json")}
    given = dict(zip(flags[::2], flags[1::2], strict=True))
    args = [arg for option, value in {**defaults, **given}.items() for arg in (option, value)]
    result = subprocess.run([DRAINCTL, "testbed", "clients", *args], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r.json").exists()
