"""Run the reference server: bind both ports, announce them, serve until SIGTERM/SIGINT, close with 1001.

Wiring only; the behaviour lives in the modules it assembles. The ready line on stdout is the contract the
harness and tests wait for:

    {"event": "ready", "name": NAME, "listen": "127.0.0.1:PORT", "admin": "127.0.0.1:PORT", "pid": PID}

Logs go to stderr. The `websockets` library logs every handshake at INFO, which at 10,000 sockets would flood
a harness's stderr pipe, so its logger is kept at WARNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import socket
import sys

from aiohttp import web
from websockets.asyncio.server import Server
from websockets.asyncio.server import serve as websockets_serve

from controller.core.errors import ConfigError
from testbed.addresses import HostPort
from testbed.collecting import Collector
from testbed.server.admin import admin_app
from testbed.server.draining import Drainer
from testbed.server.handling import SocketHandler
from testbed.server.handshakes import Admission
from testbed.server.limiting import ConnectLimiter
from testbed.server.metrics import ServerMetrics
from testbed.server.options import Fault, ServerOptions
from testbed.server.sockets import OpenSockets
from testbed.server.sweeping import sweep_idle

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 4096
"""Room for a reconnect wave of thousands of clients arriving at once."""
CLOSE_TIMEOUT_S = 5.0
"""How long a close we start waits for the peer's close frame before dropping the TCP connection."""
SHUTDOWN_GRACE_S = 3.0
"""On SIGTERM, how long the 1001 closes may take before the remaining connections are aborted."""
MAX_FRAME_BYTES = 2**16
"""Phoenix control messages are small; a low cap bounds per-socket memory."""
QUIET_S = 2.0
"""No socket opened or closed for this long: a full garbage collection may stop the loop now
(testbed/collecting.py: in a reconnect wave such a stop took the survivor out of HAProxy's rotation)."""


def serve(options: ServerOptions) -> None:
    """Run the server in this process until SIGTERM or SIGINT."""
    _configure_logging()
    _raise_open_files_limit()
    asyncio.run(_run(options))


async def _run(options: ServerOptions) -> None:
    metrics = ServerMetrics()
    sockets = OpenSockets()
    drainer = Drainer(sockets, metrics, ignore_requests=options.fault is Fault.IGNORE_DRAIN)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with contextlib.AsyncExitStack() as stack:
        ws_server = await _start_main(options, metrics, sockets, drainer)
        stack.push_async_callback(_close_sockets, ws_server, sockets)
        stack.push_async_callback(drainer.stop)
        runner = await _start_admin(options, drainer, sockets)
        stack.push_async_callback(runner.cleanup)
        _announce(options.name, listen=_bound(ws_server.sockets), admin=_bound_admin(runner))
        sweeper = loop.create_task(sweep_idle(sockets, idle_timeout_s=options.idle_timeout_s), name="idle-sweep")
        stack.callback(sweeper.cancel)
        collector = Collector(lambda: loop.time() - sockets.changed_at_s >= QUIET_S)
        collector.start()
        stack.callback(loop.create_task(collector.run(), name="collector").cancel)
        await stopping.wait()
        log.info("stopping: closing %d sockets with 1001", len(sockets))


async def _start_main(
    options: ServerOptions, metrics: ServerMetrics, sockets: OpenSockets, drainer: Drainer
) -> Server:
    handler = SocketHandler(server_name=options.name, sockets=sockets, metrics=metrics)
    admission = Admission(metrics=metrics, drainer=drainer, limiter=ConnectLimiter())
    try:
        return await websockets_serve(
            handler,
            options.listen.host,
            options.listen.port,
            process_request=admission,
            compression=None,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=MAX_FRAME_BYTES,
            backlog=LISTEN_BACKLOG,
        )
    except OSError as exc:
        raise ConfigError(f"--listen {options.listen}: cannot listen: {exc.strerror or exc}") from exc


async def _start_admin(options: ServerOptions, drainer: Drainer, sockets: OpenSockets) -> web.AppRunner:
    app = admin_app(
        name=options.name, token=options.admin_token, fault=options.fault, drainer=drainer, sockets=sockets
    )
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, options.admin.host, options.admin.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"--admin {options.admin}: cannot listen: {exc.strerror or exc}") from exc
    return runner


async def _close_sockets(ws_server: Server, sockets: OpenSockets) -> None:
    """Close every socket with 1001 "shutdown"; abort the TCP connections still open after the grace period."""
    sockets.mark_all("shutdown")
    ws_server.close(code=1001, reason="shutdown")
    try:
        await asyncio.wait_for(ws_server.wait_closed(), SHUTDOWN_GRACE_S)
    except TimeoutError:
        log.warning("%d sockets still open after %g s; aborting them", len(sockets), SHUTDOWN_GRACE_S)
        sockets.abort_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws_server.wait_closed(), SHUTDOWN_GRACE_S)


def _announce(name: str, *, listen: HostPort, admin: HostPort) -> None:
    line = {"event": "ready", "name": name, "listen": str(listen), "admin": str(admin), "pid": os.getpid()}
    print(json.dumps(line), flush=True)
    log.info("server %s ready: listen %s, admin %s", name, listen, admin)


def _bound(sockets: tuple[socket.socket, ...]) -> HostPort:
    host, port = sockets[0].getsockname()[:2]
    return HostPort(str(host), int(port))


def _bound_admin(runner: web.AppRunner) -> HostPort:
    host, port = runner.addresses[0][:2]
    return HostPort(str(host), int(port))


def _configure_logging() -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)


def _raise_open_files_limit() -> None:
    """One file descriptor per socket: lift the soft limit to the hard limit (10,000 sockets per process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit from %d: %s", soft, exc)
