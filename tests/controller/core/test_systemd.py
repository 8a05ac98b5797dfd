"""The sd_notify client the daemons use under `Type=notify` units: what systemd receives on its socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from controller.core.systemd import Notifier
from tests.support import WITHIN_S
from tests.support.tasks import async_test


def _listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


@async_test
async def test_systemd_hears_ready_then_watchdog_pings_then_stopping(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    with _listening(tmp_path / "notify") as systemd:
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "30000000"})
        assert notifier.watchdog_s == 30.0

        notifier.ready("API on 127.0.0.1:9300")
        ready = await asyncio.wait_for(loop.sock_recv(systemd, 512), WITHIN_S)
        assert ready == b"READY=1\nSTATUS=API on 127.0.0.1:9300"
        pings = asyncio.create_task(notifier.keep_alive())
        assert await asyncio.wait_for(loop.sock_recv(systemd, 512), WITHIN_S) == b"WATCHDOG=1"
        pings.cancel()
        notifier.stopping()
        assert await asyncio.wait_for(loop.sock_recv(systemd, 512), WITHIN_S) == b"STOPPING=1"


@async_test
async def test_outside_systemd_nothing_is_sent_and_there_is_no_watchdog() -> None:
    notifier = Notifier({})
    notifier.ready("x")
    await asyncio.wait_for(notifier.keep_alive(), WITHIN_S)  # returns at once: nothing to ping
    assert notifier.watchdog_s is None
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_s is None, (
        "the watchdog is another process's"
    )
