"""The client swarm's parts: backoff, Retry-After, report maths, and one client against a scripted peer.

The peer here is a small `websockets` server on loopback whose behaviour each test chooses (answer joins but not
heartbeats, close with 1012, drop the TCP connection, refuse with 401/503). The swarm's own code runs unmodified
against it; the integration tests against the real reference server are in test_swarm_integration.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from testbed import phoenix
from testbed.swarm.backoff import Backoff, retry_after_s
from testbed.swarm.connecting import ConnectFailed, Rejected, Unauthorized, connect_and_join, socket_url
from testbed.swarm.heartbeating import hold
from testbed.swarm.options import SwarmOptions
from testbed.swarm.records import Cause, ClientState, Disconnect, Ending, SwarmState
from testbed.swarm.reporting import build_report, nearest_rank, offline_summary, snapshot, write_atomically
from testbed.swarm.running import Swarm

pytestmark = pytest.mark.anyio  # async tests run on asyncio through anyio's pytest plugin (ships with httpx)

WAIT_S = 30.0
"""Generous bound for anything the tests wait for (the machine is shared and slow at times)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class _Top(random.Random):
    """A random source that always draws the top of the range: makes the jitter's upper bound visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Bottom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


# --- backoff -------------------------------------------------------------------------------------------------


def test_backoff_grows_by_half_from_500_ms_and_stops_at_the_cap() -> None:
    backoff = Backoff(rng=_Top())
    delays = [backoff.next_delay_s() for _ in range(20)]
    assert delays[:4] == pytest.approx([0.5, 0.75, 1.125, 1.6875])
    assert max(delays) == 60.0
    assert delays[-1] == 60.0


def test_backoff_equal_jitter_stays_within_half_and_full_base() -> None:
    backoff = Backoff(rng=random.Random(7))
    bases = [min(60.0, 0.5 * 1.5**n) for n in range(30)]
    for base in bases:
        assert base / 2 <= backoff.next_delay_s() <= base
    lowest = Backoff(rng=_Bottom())
    assert [lowest.next_delay_s() for _ in range(2)] == pytest.approx([0.25, 0.375])


def test_backoff_jitter_spreads_a_wave_of_clients() -> None:
    rng = random.Random(1)
    first_delays = {round(Backoff(rng=rng).next_delay_s(), 6) for _ in range(1000)}
    assert len(first_delays) > 900
    assert min(first_delays) >= 0.25
    assert max(first_delays) <= 0.5


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(rng=_Top())
    for _ in range(10):
        backoff.next_delay_s()
    backoff.reset()
    assert backoff.next_delay_s() == 0.5


def test_retry_after_in_seconds() -> None:
    assert retry_after_s("1") == 1.0
    assert retry_after_s(" 3 ") == 3.0
    assert retry_after_s("0") == 0.0
    assert retry_after_s("3600") == 60.0  # clamped to the backoff cap


def test_retry_after_as_http_date() -> None:
    now_s = 1_700_000_000.0
    assert retry_after_s(email.utils.formatdate(now_s + 5, usegmt=True), now_s=now_s) == pytest.approx(5.0)
    assert retry_after_s(email.utils.formatdate(now_s - 5, usegmt=True), now_s=now_s) == 0.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", now_s=1445412480.0 - 2) == pytest.approx(2.0)


def test_retry_after_missing_or_unreadable_falls_back_to_backoff() -> None:
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    assert retry_after_s("-1") is None
    assert retry_after_s("") is None


# --- report maths and shape ----------------------------------------------------------------------------------


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert nearest_rank(values, 50) == 50.0
    assert nearest_rank(values, 99) == 99.0
    assert nearest_rank(values, 100) == 100.0
    assert nearest_rank([3.0], 99) == 3.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert nearest_rank([], 50) is None


def test_offline_summary_counts_the_never_rejoined_apart() -> None:
    summary = offline_summary([0.4, None, 0.2, 1.0, None])
    assert summary == {"max": 1.0, "p50": 0.4, "p99": 1.0, "count": 3, "never_rejoined": 2}
    assert offline_summary([None]) == {"max": None, "p50": None, "p99": None, "count": 0, "never_rejoined": 1}


def _state_after_a_drain() -> SwarmState:
    """Three clients: 0 and 1 were drained from A (1012) and rejoined B; 2 hit a heartbeat timeout for good."""
    state = SwarmState([ClientState(i) for i in range(3)])
    drained = Ending(Cause.CLOSE, 1012)
    state.disconnects = [
        Disconnect(0, 1000.0, 10.0, drained, "A", offline_s=0.3),
        Disconnect(1, 1000.5, 10.5, drained, "A", offline_s=0.6),
        Disconnect(2, 1001.0, 11.0, Ending(Cause.HEARTBEAT_TIMEOUT), "A"),
    ]
    for client, joins in zip(state.clients, (2, 2, 1), strict=True):
        client.joins = joins
    state.clients[0].server, state.clients[1].server = "B", "B"
    state.clients[0].connection = state.clients[1].connection = object()  # type: ignore[assignment]
    state.clients[1].rate_limited = 2
    state.counts.connect_attempts = 9
    state.counts.rejected_503 = 4
    state.counts.rate_limited = 2
    state.counts.refused_draining = 1
    state.counts.connect_failures = 2
    return state


def test_report_has_the_contract_shape() -> None:
    state = _state_after_a_drain()
    report = build_report(state, snapshot(state), duration_s=12.34567, heartbeat_interval_s=10.0,
                          heartbeat_timeout_s=35.0)
    assert report["clients"] == 3
    assert report["duration_s"] == 12.346
    assert (report["heartbeat_interval_s"], report["heartbeat_timeout_s"]) == (10.0, 35.0)
    assert report["connected_at_end"] == 2
    assert report["servers_at_end"] == {"B": 2}
    assert (report["connect_attempts"], report["rejected_503"], report["rate_limited"]) == (9, 4, 2)
    assert report["refused_draining"] == 1, "the draining server's own refusals"
    assert report["no_server_503"] == 1, "the other 503 without Retry-After: a load balancer with no server"
    assert (report["unauthorized"], report["connect_failures"]) == (0, 2)
    assert report["rate_limited_max_per_client"] == 2
    assert report["by_cause"] == {"close:1012": 2, "heartbeat_timeout": 1}
    assert report["offline_s"] == {"max": 0.6, "p50": 0.3, "p99": 0.6, "count": 2, "never_rejoined": 1}
    assert report["disconnects"][0] == {
        "client": 0, "at": 1000.0, "cause": "close", "code": 1012, "server": "A", "offline_s": 0.3,
    }
    assert report["disconnects"][2]["cause"] == "heartbeat_timeout"
    assert report["disconnects"][2]["code"] is None
    assert report["disconnects"][2]["offline_s"] is None
    assert report["per_client"] == [
        {"client": 0, "joins": 2, "server": "B", "rate_limited": 0},
        {"client": 1, "joins": 2, "server": "B", "rate_limited": 2},
        {"client": 2, "joins": 1, "server": None, "rate_limited": 0},
    ]
    json.dumps(report)  # the whole report is plain JSON


def test_report_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("old")
    write_atomically(path, {"clients": 1})
    assert json.loads(path.read_text()) == {"clients": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind


def test_socket_url_adds_the_phoenix_path_and_token() -> None:
    assert socket_url("ws://127.0.0.1:4000", "t-1") == "ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0&token=t-1"
    assert socket_url("http://lb:80/api/", "a b") == "ws://lb:80/api/socket/websocket?vsn=2.0.0&token=a+b"


# --- one client against a scripted peer ----------------------------------------------------------------------

Handler = Callable[[ServerConnection], Awaitable[None]]
Refusal = Callable[[ServerConnection, Request], Response | None]


@asynccontextmanager
async def peer(handler: Handler, refuse: Refusal | None = None) -> AsyncIterator[str]:
    """A WebSocket server on a free loopback port; yields its base URL."""
    async with serve(handler, "127.0.0.1", 0, process_request=refuse, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


def phoenix_peer(*, answer_heartbeats: bool = True, after_join: Callable[[ServerConnection], Awaitable[None]]
                 | None = None) -> Handler:
    """A peer that answers joins (as server "P") and, if told, heartbeats; `after_join` then acts on the socket."""

    async def handle(connection: ServerConnection) -> None:
        async for frame in connection:
            message = phoenix.decode(frame)
            if message.event == phoenix.JOIN:
                await connection.send(message.reply("ok", {"server": "P"}).encode())
                if after_join is not None:
                    await after_join(connection)
                    return
            elif message.event == phoenix.HEARTBEAT and answer_heartbeats:
                await connection.send(message.reply().encode())

    return handle


async def test_join_reports_the_server_name() -> None:
    async with peer(phoenix_peer()) as url:
        joined = await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
        assert joined.server == "P"
        await joined.connection.close()


async def test_heartbeats_keep_a_live_socket_and_silence_is_declared_dead() -> None:
    async with peer(phoenix_peer(answer_heartbeats=True)) as url:
        joined = await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
        # Replies keep coming: after many heartbeat timeouts' worth of time the socket is still held.
        holding = asyncio.create_task(hold(joined.connection, interval_s=0.1, timeout_s=1.5))
        done, _ = await asyncio.wait([holding], timeout=4.0)
        assert not done, f"a live socket was dropped: {holding.result()}"
        holding.cancel()
        await joined.connection.close()
    async with peer(phoenix_peer(answer_heartbeats=False)) as url:
        joined = await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
        ending = await asyncio.wait_for(hold(joined.connection, interval_s=0.05, timeout_s=0.5), WAIT_S)
        assert ending == Ending(Cause.HEARTBEAT_TIMEOUT)
        assert joined.connection.transport.is_closing()


async def test_without_detection_a_silent_socket_is_held() -> None:
    async with peer(phoenix_peer(answer_heartbeats=False)) as url:
        joined = await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
        holding = asyncio.create_task(hold(joined.connection, interval_s=0.05, timeout_s=0))
        done, _ = await asyncio.wait([holding], timeout=2.0)
        assert not done
        holding.cancel()
        await joined.connection.close()


async def test_close_frame_code_and_reset_are_told_apart() -> None:
    async def drain(connection: ServerConnection) -> None:
        await connection.close(1012, "service restart")

    async def drop(connection: ServerConnection) -> None:
        connection.transport.abort()

    for after_join, expected in ((drain, Ending(Cause.CLOSE, 1012)), (drop, Ending(Cause.RESET))):
        async with peer(phoenix_peer(after_join=after_join)) as url:
            joined = await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
            ending = await asyncio.wait_for(hold(joined.connection, interval_s=5, timeout_s=0), WAIT_S)
            assert ending == expected


def refuse_with(status: HTTPStatus, retry_after: str | None = None, body: str | None = None) -> Refusal:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, f"{status.phrase}\n" if body is None else body)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    return refuse


async def test_handshake_refusals_are_classified() -> None:
    cases: list[tuple[Refusal, type[Exception], float | None]] = [
        (refuse_with(HTTPStatus.UNAUTHORIZED), Unauthorized, None),
        (refuse_with(HTTPStatus.SERVICE_UNAVAILABLE, "1"), Rejected, 1.0),
        (refuse_with(HTTPStatus.SERVICE_UNAVAILABLE), Rejected, None),
        (refuse_with(HTTPStatus.INTERNAL_SERVER_ERROR), ConnectFailed, None),
    ]
    for refuse, error, retry_after in cases:
        async with peer(phoenix_peer(), refuse) as url:
            with pytest.raises(error) as caught:
                await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
            if isinstance(caught.value, Rejected):
                assert caught.value.retry_after_s == retry_after
                assert caught.value.draining is False


async def test_a_draining_servers_503_is_told_from_a_load_balancers_own() -> None:
    """Both come without Retry-After; only the reference server's says `draining` (HAProxy's: no server)."""
    haproxy_page = "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request."
    for body, draining in ((phoenix.DRAINING_BODY, True), (haproxy_page, False)):
        async with peer(phoenix_peer(), refuse_with(HTTPStatus.SERVICE_UNAVAILABLE, body=body)) as url:
            with pytest.raises(Rejected) as caught:
                await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)
        assert (caught.value.retry_after_s, caught.value.draining) == (None, draining)


async def test_connection_refused_is_a_retryable_failure() -> None:
    async with peer(phoenix_peer()) as url:
        pass  # the port is free again
    with pytest.raises(ConnectFailed):
        await connect_and_join(socket_url(url, "t"), "room:lobby", timeout_s=WAIT_S)


# --- the swarm's bookkeeping against a scripted peer ---------------------------------------------------------


def _options(url: str, count: int, tmp_path: Path) -> SwarmOptions:
    return SwarmOptions(
        url=url, count=count, heartbeat_interval_s=0.2, heartbeat_timeout_s=0.0, duration_s=60.0,
        report=tmp_path / "report.json", token_prefix="t",
    )


async def _until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + WAIT_S
    while not condition():
        assert loop.time() < deadline_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_rate_limited_connects_are_counted_and_retried_after_retry_after(tmp_path: Path) -> None:
    seen: set[str] = set()

    def limit_first_connect(connection: ServerConnection, request: Request) -> Response | None:
        token = request.path.rsplit("token=", 1)[1]
        if token in seen:
            return None
        seen.add(token)
        return refuse_with(HTTPStatus.SERVICE_UNAVAILABLE, "1")(connection, request)

    async with peer(phoenix_peer(), limit_first_connect) as url:
        swarm = Swarm(_options(url, 3, tmp_path))
        tasks = swarm.start()
        try:
            await _until(lambda: all(c.joins == 1 for c in swarm.state.clients), "every client to join")
        finally:
            assert await swarm.stop(tasks) == []
    counts = swarm.state.counts
    assert (counts.connect_attempts, counts.rejected_503, counts.rate_limited) == (6, 3, 3)
    assert [c.rate_limited for c in swarm.state.clients] == [1, 1, 1]
    assert counts.connect_failures == counts.unauthorized == 0


async def test_unauthorized_client_stops_and_the_others_carry_on(tmp_path: Path) -> None:
    def refuse_client_1(connection: ServerConnection, request: Request) -> Response | None:
        return refuse_with(HTTPStatus.UNAUTHORIZED)(connection, request) if "token=t-1" in request.path else None

    async with peer(phoenix_peer(), refuse_client_1) as url:
        swarm = Swarm(_options(url, 3, tmp_path))
        tasks = swarm.start()
        try:
            await _until(lambda: tasks[1].done() and swarm.state.clients[2].joins == 1, "client 1 to give up")
        finally:
            await swarm.stop(tasks)
    assert swarm.state.counts.unauthorized == 1
    assert swarm.state.counts.connect_attempts == 3  # no retry after a 401
    assert swarm.state.clients[1].unauthorized
    assert [c.joins for c in swarm.state.clients] == [1, 0, 1]


async def test_a_drained_client_records_the_disconnect_and_its_offline_time(tmp_path: Path) -> None:
    sessions: dict[str, int] = {}

    async def close_first_session(connection: ServerConnection) -> None:
        token = connection.request.path.rsplit("token=", 1)[1] if connection.request else ""
        sessions[token] = sessions.get(token, 0) + 1
        if sessions[token] == 1:
            await connection.close(1012, "drain")
        else:
            await phoenix_peer()(connection)

    async def handle(connection: ServerConnection) -> None:
        await phoenix_peer(after_join=close_first_session)(connection)

    async with peer(handle) as url:
        swarm = Swarm(_options(url, 2, tmp_path))
        tasks = swarm.start()
        try:
            await _until(lambda: all(c.joins == 2 for c in swarm.state.clients), "every client to rejoin")
        finally:
            await swarm.stop(tasks)
    disconnects = swarm.state.disconnects
    assert sorted(d.client for d in disconnects) == [0, 1]
    assert {d.ending for d in disconnects} == {Ending(Cause.CLOSE, 1012)}
    assert all(d.server == "P" for d in disconnects)
    # Rejoined after the first backoff delay (equal jitter: at least 0.25 s).
    assert all(d.offline_s is not None and d.offline_s >= 0.25 for d in disconnects)
