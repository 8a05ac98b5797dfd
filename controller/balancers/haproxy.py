"""HAProxy's runtime API as a `Balancer`: whether it still routes new connections to a server.

The out-of-rotation step (controller/engine/rotating.py) asks this instead of waiting the whole
deregistration time: `show stat` over the stats socket gives each server's status. `UP` and `UP 1/2`
(a check failed, not yet `fall`) still get new connections; `DOWN`, `MAINT`, `DRAIN`, `NOLB` do not. A server
HAProxy does not list (another backend, another balancer) is "cannot tell", never "out".

    HaproxyError (TemporaryError)   the socket refused, timed out, or answered something that is not CSV
"""

from __future__ import annotations

import asyncio
import csv
import io

from controller.core.errors import TemporaryError

_SUN_PATH_BYTES = 108
OUT_OF_ROTATION = ("DOWN", "MAINT", "DRAIN", "NOLB")
"""Statuses under which HAProxy sends a server no new connections."""


class HaproxyError(TemporaryError):
    """The runtime API could not be read this time."""


class HaproxyBalancer:
    """Reads server states from one HAProxy's runtime API socket (`abns@name` or a file path)."""

    def __init__(self, socket: str, *, backend: str, timeout_s: float = 2.0) -> None:
        self.name = f"haproxy backend {backend}"
        self._socket = socket
        self._backend = backend
        self._timeout_s = timeout_s

    async def routing(self, instance: str) -> bool | None:
        status = (await self.states()).get(instance)
        if status is None:
            return None
        return status.split(" ")[0] not in OUT_OF_ROTATION

    async def states(self) -> dict[str, str]:
        """Each server of the backend and its status as `show stat` has it."""
        text = (await self._command("show stat")).removeprefix("# ")
        rows = csv.DictReader(io.StringIO(text))
        if rows.fieldnames is None or "svname" not in rows.fieldnames:
            raise HaproxyError(f"haproxy {self._socket}: `show stat` did not answer CSV: {text[:80]!r}")
        return {
            row["svname"]: row.get("status") or ""
            for row in rows
            if row.get("pxname") == self._backend and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    async def _command(self, line: str) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                reader, writer = await asyncio.open_unix_connection(self._address())
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    return (await reader.read()).decode()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise HaproxyError(f"haproxy {self._socket}: {line!r} failed: {exc or 'timed out'}") from exc

    def _address(self) -> str:
        if self._socket.startswith("abns@"):
            # HAProxy binds abstract sockets with the whole sun_path, NUL-padded: connect to the same name.
            return ("\0" + self._socket.removeprefix("abns@")).ljust(_SUN_PATH_BYTES, "\0")
        return self._socket
