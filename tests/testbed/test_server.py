"""The reference API server (`drainctl testbed server`), run as a subprocess and spoken to over real sockets.

Each test starts its own server with port 0, reads the ready line for the bound ports, and talks to it with
`websockets` and `httpx` like the swarm, the harness and the controller do. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from testbed import phoenix
from tests.support import until

DRAINCTL = Path(sys.executable).with_name("drainctl")
ADMIN_TOKEN = "s3cret-admin-token"
BOUND_S = 30.0
"""Generous bound for anything the tests wait for (the machine is shared and busy)."""


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    name: str
    listen: str
    admin: str
    stderr_path: Path

    def socket_url(self, token: str | None = "tok", *, vsn: str = phoenix.VSN, path: str = phoenix.SOCKET_PATH) -> str:
        query = f"vsn={vsn}" + ("" if token is None else f"&token={token}")
        return f"ws://{self.listen}{path}?{query}"

    def http(self, path: str) -> str:
        return f"http://{self.listen}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://{self.admin}{path}"


def _start(tmp_path: Path, *args: str, name: str) -> RunningServer:
    token_file = tmp_path / f"{name}.token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    stderr_path = tmp_path / f"{name}.stderr"
    command = [str(DRAINCTL), "testbed", "server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    command += ["--admin-token-file", str(token_file), "--name", name, *args]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        ready = _read_ready_line(process, stderr_path)
    except BaseException:
        _stop(process)
        raise
    assert ready["event"] == "ready" and ready["name"] == name and ready["pid"] == process.pid
    return RunningServer(process, name, ready["listen"], ready["admin"], stderr_path)


def _read_ready_line(process: subprocess.Popen[str], stderr_path: Path) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=BOUND_S):
            raise AssertionError(f"no ready line within {BOUND_S} s; stderr: {stderr_path.read_text()}")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"server exited ({process.wait()}) before ready; stderr: {stderr_path.read_text()}")
    ready: dict[str, Any] = json.loads(line)
    return ready


def _stop(process: subprocess.Popen[str]) -> int:
    """SIGTERM (after SIGCONT: a test may have left it stopped); SIGKILL if it does not exit. The exit code."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            try:
                return process.wait(timeout=BOUND_S)
            except subprocess.TimeoutExpired:
                process.kill()
        return process.wait()
    finally:
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with extra flags; every one is stopped at teardown, also when the test fails."""
    started: list[RunningServer] = []

    def start(*args: str, name: str = "alpha") -> RunningServer:
        server = _start(tmp_path, *args, name=name)
        started.append(server)
        return server

    try:
        yield start
    finally:
        exit_codes = [_stop(server.process) for server in started]
    for server, exit_code in zip(started, exit_codes, strict=True):
        log = server.stderr_path.read_text()
        assert exit_code == 0, f"server {server.name} exited {exit_code} on SIGTERM; stderr: {log}"
        assert "Traceback" not in log and " ERROR " not in log, f"server {server.name} logged errors: {log}"


@pytest.fixture
def server(start_server: Callable[..., RunningServer]) -> RunningServer:
    return start_server()


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, timeout=4 * BOUND_S))


# --- client helpers --------------------------------------------------------------------------------------------


def open_socket(url: str, headers: dict[str, str] | None = None) -> Any:
    return connect(url, additional_headers=headers, ping_interval=None, compression=None, open_timeout=BOUND_S)


async def call(ws: ClientConnection, message: phoenix.Message) -> phoenix.Message:
    """Send a message and return the reply with the same ref."""
    await ws.send(message.encode())
    async with asyncio.timeout(BOUND_S):
        while True:
            reply = phoenix.decode(await ws.recv())
            if reply.ref == message.ref and reply.event == phoenix.REPLY:
                return reply


async def handshake(url: str, headers: dict[str, str] | None = None) -> tuple[int, Headers]:
    """The HTTP status a handshake gets (101 when accepted; the socket is then closed) and its headers."""
    try:
        async with open_socket(url, headers) as ws:
            return 101, ws.response.headers
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.headers


async def close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Wait until the server closes `ws`; the close code and reason it sent."""
    async with asyncio.timeout(BOUND_S):
        await ws.wait_closed()
    return ws.close_code, ws.close_reason


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"no sample {name}{labels} in /metrics")


async def metrics(server: RunningServer) -> str:
    async with httpx.AsyncClient(timeout=BOUND_S) as http:
        response = await http.get(server.http("/metrics"))
    assert response.status_code == 200
    return response.text


async def status(server: RunningServer) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=BOUND_S) as http:
        response = await http.get(server.admin_url("/admin/status"), headers=_auth())
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def drain(server: RunningServer, rate_per_s: float) -> httpx.Response:
    async with httpx.AsyncClient(timeout=BOUND_S) as http:
        return await http.post(server.admin_url("/admin/drain"), json={"rate_per_s": rate_per_s}, headers=_auth())


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=BOUND_S) as http:
        return await http.get(url)


def _auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def joined_sockets(server: RunningServer, count: int, *, prefix: str = "client") -> list[ClientConnection]:
    sockets = []
    for index in range(count):
        ws = await open_socket(server.socket_url(f"{prefix}-{index}"))
        reply = await call(ws, phoenix.join("room:lobby", "1"))
        assert reply.payload == {"status": "ok", "response": {"server": server.name}}
        sockets.append(ws)
    return sockets


async def close_all(sockets: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


# --- protocol --------------------------------------------------------------------------------------------------


def test_join_and_heartbeat_are_answered_with_the_server_name(server: RunningServer) -> None:
    async def scenario() -> None:
        async with open_socket(server.socket_url("alice")) as ws:
            join = await call(ws, phoenix.join("room:lobby", "1"))
            assert (join.join_ref, join.topic) == ("1", "room:lobby")
            assert join.payload == {"status": "ok", "response": {"server": "alpha"}}
            beat = await call(ws, phoenix.heartbeat("2"))
            assert (beat.join_ref, beat.topic, beat.payload) == (None, "phoenix", {"status": "ok", "response": {}})
            assert metric(await metrics(server), "drainctl_testbed_open_sockets") == 1
            assert metric(await metrics(server), "drainctl_testbed_connects_total") == 1
        await until(lambda: _has(server, "drainctl_testbed_disconnects_total", 1, reason="client_close"),
                    within_s=BOUND_S, what="client_close")

    run(scenario())


async def _has(server: RunningServer, name: str, value: float, **labels: str) -> bool:
    return metric(await metrics(server), name, **labels) == value


def test_pushes_leave_and_unjoined_topics_get_phoenix_replies(server: RunningServer) -> None:
    async def scenario() -> None:
        async with open_socket(server.socket_url("bob")) as ws:
            await call(ws, phoenix.join("room:a", "1"))
            push = await call(ws, phoenix.Message("1", "2", "room:a", "shout", {"body": "hi"}))
            assert push.payload == {"status": "ok", "response": {"body": "hi"}}
            leave = await call(ws, phoenix.Message("1", "3", "room:a", phoenix.LEAVE, {}))
            assert leave.payload["status"] == "ok"
            after = await call(ws, phoenix.Message("1", "4", "room:a", "shout", {}))
            assert after.payload == {"status": "error", "response": {"reason": "unmatched topic"}}

    run(scenario())


def test_malformed_frames_are_ignored_and_the_socket_keeps_working(server: RunningServer) -> None:
    async def scenario() -> None:
        async with open_socket(server.socket_url("carol")) as ws:
            for junk in ("not json", "[1, 2]", '{"a": 1}', '[null, 5, "t", "e", {}]', b"\x00\xff"):
                await ws.send(junk)
            beat = await call(ws, phoenix.heartbeat("7"))
            assert beat.payload["status"] == "ok"

    run(scenario())


def test_handshake_errors_401_without_token_404_wrong_path_400_wrong_vsn(server: RunningServer) -> None:
    async def scenario() -> None:
        assert (await handshake(server.socket_url(None)))[0] == 401
        assert (await handshake(server.socket_url("")))[0] == 401
        assert (await handshake(server.socket_url("t", path="/socket/other")))[0] == 404
        assert (await handshake(server.socket_url("t", vsn="1.0.0")))[0] == 400
        text = await metrics(server)
        assert metric(text, "drainctl_testbed_connects_rejected_total", reason="unauthorized") == 2
        assert metric(text, "drainctl_testbed_connects_total") == 0

    run(scenario())


def test_health_readiness_and_metrics_routes(server: RunningServer) -> None:
    async def scenario() -> None:
        healthz, readyz, metrics_ = [await get(server.http(p)) for p in ("/healthz", "/readyz", "/metrics")]
        assert (healthz.status_code, healthz.text.strip()) == (200, "ok")
        assert (readyz.status_code, readyz.text.strip()) == (200, "ready")
        assert metrics_.headers["content-type"].startswith("text/plain; version=")
        assert metric(metrics_.text, "drainctl_testbed_draining") == 0
        assert await status(server) == {
            "name": "alpha", "draining": False, "open_sockets": 0, "fault": None, "drain_rate_per_s": None
        }

    run(scenario())


# --- connect rate limit ----------------------------------------------------------------------------------------


async def _within_a_second(*attempts: Callable[[], Awaitable[tuple[int, Headers]]]) -> list[tuple[int, Headers]] | None:
    """The handshakes' outcomes, one after the other; None when a busy machine stretched them past a second."""
    started = time.monotonic()
    results = [await attempt() for attempt in attempts]
    return results if time.monotonic() - started < 0.9 else None


async def _retry_busy(attempt: Callable[[int], Awaitable[bool]]) -> None:
    """Run an attempt (fresh tokens each time) until one was not disturbed by a busy machine."""
    for round_ in range(10):
        if await attempt(round_):
            return
    pytest.fail("the machine was too busy to make two connects within one second, ten times")


def test_second_connect_within_a_second_same_token_same_ip_gets_503_retry_after(server: RunningServer) -> None:
    async def attempt(round_: int) -> bool:
        url = server.socket_url(f"dave-{round_}")
        results = await _within_a_second(lambda: handshake(url), lambda: handshake(url))
        if results is None:
            return False
        (first, _), (second, headers) = results
        assert (first, second, headers.get("Retry-After")) == (101, 503, "1")
        other = await handshake(server.socket_url(f"erin-{round_}"))
        assert other[0] == 101, "another token from the same IP must get in"
        return True

    async def scenario() -> None:
        await _retry_busy(attempt)
        assert metric(await metrics(server), "drainctl_testbed_connects_rejected_total", reason="rate_limited") >= 1

    run(scenario())


def test_rate_limit_keys_on_the_forwarded_client_ip(server: RunningServer) -> None:
    async def attempt(round_: int) -> bool:
        url = server.socket_url(f"frank-{round_}")
        ip_a, ip_b = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.7, 127.0.0.1"}
        results = await _within_a_second(
            lambda: handshake(url, ip_a), lambda: handshake(url, ip_b), lambda: handshake(url, ip_a)
        )
        if results is None:
            return False
        (a, _), (b, _), (a_again, headers) = results
        assert (a, b) == (101, 101), "two client IPs behind the proxy have their own buckets"
        assert (a_again, headers.get("Retry-After")) == (503, "1"), "the forwarded IP is the one charged"
        return True

    run(_retry_busy(attempt))


# --- drain -----------------------------------------------------------------------------------------------------


def test_drain_closes_every_socket_with_1012_at_a_pace_and_refuses_new_ones(server: RunningServer) -> None:
    count, rate_per_s = 20, 10.0

    async def scenario() -> None:
        sockets = await joined_sockets(server, count)
        loop = asyncio.get_running_loop()

        async def closed_at(ws: ClientConnection) -> tuple[float, tuple[int | None, str | None]]:
            close = await close_of(ws)
            return loop.time(), close

        watchers = [asyncio.create_task(closed_at(ws)) for ws in sockets]
        answer = await drain(server, rate_per_s)
        assert answer.status_code == 202
        assert answer.json() == {"accepted": True, "open_sockets": count, "rate_per_s": rate_per_s}
        readyz = await get(server.http("/readyz"))
        assert (readyz.status_code, readyz.text.strip()) == (503, "draining")

        results = await asyncio.gather(*watchers)
        assert {close for _, close in results} == {(1012, "drain")}
        times = sorted(at for at, _ in results)
        # Paced, not all at once: 20 closes at 10/s take about 1.9 s; a busy machine only makes it slower.
        assert times[-1] - times[0] >= 0.9

        await until(lambda: _open_sockets_is(server, 0), within_s=BOUND_S, what="status open_sockets reaches 0")
        text = await metrics(server)
        assert metric(text, "drainctl_testbed_disconnects_total", reason="drain") == count
        assert metric(text, "drainctl_testbed_open_sockets") == 0
        assert metric(text, "drainctl_testbed_draining") == 1
        assert metric(text, "drainctl_testbed_drain_rate_per_second") == rate_per_s

        code, headers = await handshake(server.socket_url("newcomer"))
        assert (code, headers.get("Retry-After")) == (503, None), "draining is told apart from rate limiting"
        text = await metrics(server)
        assert metric(text, "drainctl_testbed_connects_rejected_total", reason="draining") == 1

        again = await drain(server, 50)
        assert (again.status_code, again.json()["rate_per_s"]) == (202, 50)
        assert (await status(server))["drain_rate_per_s"] == 50

    run(scenario())


async def _open_sockets_is(server: RunningServer, count: int) -> bool:
    return bool((await status(server))["open_sockets"] == count)


def test_ignore_drain_fault_acknowledges_and_keeps_sockets_open(start_server: Callable[..., RunningServer]) -> None:
    server = start_server("--fault", "ignore-drain", name="faulty")

    async def scenario() -> None:
        sockets = await joined_sockets(server, 3)
        answer = await drain(server, 1000)
        assert answer.status_code == 202
        assert answer.json() == {"accepted": True, "open_sockets": 3, "rate_per_s": 1000}
        # A real drain at 1000/s closes three sockets within milliseconds; keep talking for a second instead.
        deadline = time.monotonic() + 1.0
        ref = 10
        while time.monotonic() < deadline:
            for ws in sockets:
                ref += 1
                assert (await call(ws, phoenix.heartbeat(str(ref)))).payload["status"] == "ok"
            await asyncio.sleep(0.1)
        assert (await get(server.http("/readyz"))).status_code == 200
        assert await status(server) == {
            "name": "faulty", "draining": False, "open_sockets": 3, "fault": "ignore-drain", "drain_rate_per_s": None
        }
        text = await metrics(server)
        assert metric(text, "drainctl_testbed_draining") == 0
        assert metric(text, "drainctl_testbed_disconnects_total", reason="drain") == 0
        await close_all(sockets)

    run(scenario())


@pytest.mark.parametrize(
    "headers",
    [{}, _auth("wrong-token"), {"Authorization": ADMIN_TOKEN}, {"Authorization": f"Basic {ADMIN_TOKEN}"}],
    ids=["no-header", "wrong-token", "no-bearer-prefix", "basic-scheme"],
)
def test_admin_without_the_right_token_is_401_and_nothing_drains(
    server: RunningServer, headers: dict[str, str]
) -> None:
    async def scenario() -> None:
        async with open_socket(server.socket_url("grace")) as ws, httpx.AsyncClient(timeout=BOUND_S) as http:
            for method, path in (("POST", "/admin/drain"), ("GET", "/admin/status")):
                response = await http.request(
                    method, server.admin_url(path), json={"rate_per_s": 1000}, headers=headers
                )
                assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
            assert (await status(server))["draining"] is False
            assert (await get(server.http("/readyz"))).status_code == 200
            assert (await call(ws, phoenix.heartbeat("1"))).payload["status"] == "ok"
        assert ADMIN_TOKEN not in server.stderr_path.read_text()

    run(scenario())


@pytest.mark.parametrize("body", [{"rate_per_s": 0}, {"rate_per_s": -5}, {"rate_per_s": "fast"}, {}, [1]])
def test_drain_with_a_bad_rate_is_400_and_nothing_drains(server: RunningServer, body: Any) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=BOUND_S) as http:
            response = await http.post(server.admin_url("/admin/drain"), json=body, headers=_auth())
        assert response.status_code == 400
        assert "rate_per_s" in response.json()["error"]
        assert (await status(server))["draining"] is False

    run(scenario())


# --- idle timeout, signals -------------------------------------------------------------------------------------


def test_idle_timeout_closes_a_silent_socket_but_not_a_talking_one(start_server: Callable[..., RunningServer]) -> None:
    server = start_server("--idle-timeout", "2")

    async def scenario() -> None:
        async with open_socket(server.socket_url("quiet")) as quiet, open_socket(server.socket_url("chatty")) as chatty:
            talking = asyncio.create_task(_heartbeat_until_closed(chatty))
            assert await close_of(quiet) == (1000, "idle timeout")
            await until(lambda: _has(server, "drainctl_testbed_disconnects_total", 1, reason="idle_timeout"),
                        within_s=BOUND_S, what="idle counted")
            # The talking socket outlives another full timeout.
            await asyncio.sleep(2.5)
            assert not talking.done(), "a socket that keeps sending must not be cut"
            talking.cancel()
            assert metric(await metrics(server), "drainctl_testbed_open_sockets") == 1

    run(scenario())


async def _heartbeat_until_closed(ws: ClientConnection, replies: list[phoenix.Message] | None = None) -> None:
    """Heartbeat every 0.2 s, also while the server does not answer (its replies are collected in `replies`)."""
    ref = 0
    while True:
        ref += 1
        await ws.send(phoenix.heartbeat(str(ref)).encode())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                while True:
                    reply = phoenix.decode(await ws.recv())
                    if replies is not None:
                        replies.append(reply)


def test_sigterm_closes_sockets_with_1001_and_exits_0(server: RunningServer) -> None:
    async def scenario() -> None:
        sockets = await joined_sockets(server, 3)
        server.process.send_signal(signal.SIGTERM)
        closes = await asyncio.gather(*(close_of(ws) for ws in sockets))
        assert set(closes) == {(1001, "shutdown")}

    run(scenario())
    assert server.process.wait(timeout=BOUND_S) == 0


def test_a_stopped_server_serves_its_sockets_again_when_continued(start_server: Callable[..., RunningServer]) -> None:
    """The "wedged" fault: stopped longer than the idle timeout, continued, its live sockets are not cut."""
    server = start_server("--idle-timeout", "2")

    async def scenario() -> None:
        async with open_socket(server.socket_url("heidi")) as ws:
            replies: list[phoenix.Message] = []
            talking = asyncio.create_task(_heartbeat_until_closed(ws, replies))
            await until(lambda: len(replies) >= 2, within_s=BOUND_S, what="heartbeats answered")
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(3.0)  # the fault itself: stopped for longer than the idle timeout
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            answered = len(replies)
            await until(lambda: len(replies) >= answered + 10, within_s=BOUND_S,
                        what="heartbeats answered after SIGCONT")
            assert not talking.done(), "a live socket must not be cut because the server itself was stopped"
            talking.cancel()
            assert metric(await metrics(server), "drainctl_testbed_disconnects_total", reason="idle_timeout") == 0
        assert (await handshake(server.socket_url("ivan")))[0] == 101

    run(scenario())


# --- bad input -------------------------------------------------------------------------------------------------


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DRAINCTL), "testbed", "server", *args], capture_output=True, text=True, timeout=60)


def _assert_usage_error(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for mention in mentions:
        assert mention in lines[0]


def test_missing_token_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.token"
    result = _run_cli("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--admin-token-file", str(missing))
    _assert_usage_error(result, "--admin-token-file", "nope.token")


def test_malformed_listen_is_one_line_and_exit_2(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("x")
    result = _run_cli("--listen", "localhost", "--admin", "127.0.0.1:0", "--admin-token-file", str(token_file))
    _assert_usage_error(result, "--listen", "localhost")


def test_listen_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("x")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _run_cli("--listen", busy, "--admin", "127.0.0.1:0", "--admin-token-file", str(token_file))
    _assert_usage_error(result, "--listen", busy)


def test_non_positive_idle_timeout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    token_file = tmp_path / "t"
    token_file.write_text("x")
    ports = ("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
    result = _run_cli(*ports, "--admin-token-file", str(token_file), "--idle-timeout", "0")
    _assert_usage_error(result, "--idle-timeout")


async def not_ready(server: RunningServer) -> httpx.Response:
    async with httpx.AsyncClient(timeout=BOUND_S) as http:
        return await http.post(server.admin_url("/admin/not-ready"), json={}, headers=_auth())


def test_not_ready_leaves_rotation_but_keeps_serving_and_admitting(start_server: Callable[..., RunningServer]) -> None:
    server = start_server(name="leaving")

    async def scenario() -> None:
        sockets = await joined_sockets(server, 2)
        answer = await not_ready(server)
        assert answer.status_code == 202
        assert answer.json() == {"accepted": True, "ready": False, "open_sockets": 2}
        assert (await get(server.http("/readyz"))).status_code == 503
        assert (await call(sockets[0], phoenix.heartbeat("7"))).payload["status"] == "ok"
        sockets += await joined_sockets(server, 1, prefix="late")  # a connect the LB still sends is admitted
        assert (await status(server))["open_sockets"] == 3
        await close_all(sockets)

    run(scenario())
