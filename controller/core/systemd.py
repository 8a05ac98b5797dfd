"""systemd's notify protocol (sd_notify(3)) for `Type=notify` units: readiness, watchdog pings, stopping.

A few datagrams on the socket systemd names in `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
namespace); without it (not under systemd, or not `Type=notify`) every call does nothing. The watchdog interval
is `$WATCHDOG_USEC` (set from the unit's `WatchdogSec=`); the daemons ping from their event loop at half of it,
so a loop that hangs stops the pings and systemd restarts the service. Standard library only: the agent uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


class Notifier:
    """Tells systemd about this process; a no-op without `$NOTIFY_SOCKET`."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        """The watchdog interval systemd expects pings within; None when there is no watchdog."""

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def ping(self) -> None:
        self._send("WATCHDOG=1")

    async def keep_alive(self) -> None:
        """Ping the watchdog at half its interval, forever (cancel it to stop); returns at once without one."""
        if self.watchdog_s is None:
            return
        while True:
            self.ping()
            await asyncio.sleep(self.watchdog_s / 2)

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        # systemd gone or the socket unusable: nothing to tell, and not worth failing for.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock, \
                contextlib.suppress(OSError):
            sock.sendto(message.encode(), self._address)


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value
