"""The service port's established TCP sockets, as the kernel sees them: count them, reset them.

Both go through `ss` (iproute2), which speaks sock_diag netlink to the kernel: the count does not depend on the
app answering, and `ss -K` (SOCK_DESTROY) makes the kernel abort each socket so its peer gets a TCP RST, even
when the owning process is stopped. `ss` prints one line per socket it matched (with `-K`: per socket it
destroyed), so the line count is the answer. Destroying needs CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil

from controller.core.errors import ConfigError, PermanentError, TemporaryError

_SS_TIMEOUT_S = 30.0


class ServiceSockets:
    """Established TCP sockets whose LOCAL port is `port` (and local address `address`, when given)."""

    def __init__(self, port: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None) -> None:
        ss = shutil.which("ss")
        if ss is None:
            raise ConfigError("agent: `ss` (Debian package iproute2) is not on PATH; it counts and resets sockets")
        self.port = port
        self._ss = ss
        self._filter = _filter(port, address)

    async def count(self) -> int:
        """How many established sockets the kernel holds on the service port right now."""
        return await self._run([])

    async def reset(self) -> int:
        """Abort every established socket on the service port (peers get RST); how many were reset."""
        return await self._run(["-K"])

    async def _run(self, extra: list[str]) -> int:
        args = [self._ss, "-Htn", *extra, "state", "established", *self._filter]
        process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), _SS_TIMEOUT_S)
        except TimeoutError as exc:
            process.kill()
            await process.wait()
            raise TemporaryError(f"ss did not answer within {_SS_TIMEOUT_S:g} s") from exc
        except asyncio.CancelledError:  # the caller gave up (the fallback's deadline): no `ss` left behind
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            reason = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise PermanentError(f"ss {' '.join(extra)} failed (exit {process.returncode}): {reason[0]}")
        return stdout.count(b"\n")


def _filter(port: int, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> list[str]:
    terms = ["(", "sport", "=", f":{port}"]
    if address is not None:
        shown = f"[{address}]" if address.version == 6 else str(address)
        terms += ["and", "src", shown]
    return [*terms, ")"]
