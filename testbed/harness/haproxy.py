"""HAProxy as the testbed's load balancer: its config rendered from the timer budget, and its runtime API.

HAProxy stands in for the cloud load balancer (DESIGN.md §7). What matters for drainctl, and is therefore taken
from the `Budget` or fixed here with the reason:

- `timeout tunnel` = `lb_idle_timeout_s`: an upgraded WebSocket idle this long is cut, like an Azure LB flow.
- health checks `GET /readyz` rendered from the budget (`HealthCheck.from_budget`): `inter` =
  `lb_check_interval_s`, `fall` = `lb_unhealthy_threshold`, `timeout check` = `lb_check_timeout_s`, back
  after 1 success; so a not-ready (503) or wedged server leaves rotation within the budget's
  `lb_deregistration_s`, the time the drain's out-of-rotation step waits for when it cannot observe HAProxy.
  `HealthCheck()` (500 ms, 2, 1 s) is what tests pass when they want a quick, fixed rotation. Servers
  marked down keep their established sessions (no `on-marked-down shutdown-sessions`): a drain, not
  HAProxy, closes them.
- `option forwardfor`: the servers' connect rate limit keys on the real client IP, not HAProxy's.
- `balance leastconn` by default: long-lived sockets; reconnects after a drain go to the emptiest survivor.
  A cloud load balancer does not know a server's open sockets: GCP's backend services pick round robin
  (`localityLbPolicy` ROUND_ROBIN, the default), Azure's load balancer hashes each flow's 5-tuple,
  kube-proxy picks at random. So `balance="roundrobin"` is the faithful one where it matters *which* server
  a reconnect lands on while a draining server is still in rotation (bench/rotation.py, issue 15): with
  `leastconn` a draining server that still holds more sockets than the survivor is never chosen, which
  hides the refused reconnects the out-of-rotation step exists to prevent.
- `option redispatch` + `retries`: a connect refused by a dead server is retried on another one.
- `maxconn` 30,000: room for 10,000+ sockets through one frontend, but each uses two file descriptors and
  HAProxy refuses to start when it cannot raise its open-files limit far enough, so `fitting_maxconn` lowers it
  to what the hard limit allows (a 20,000 hard limit, as in some containers, gives 9,900).
- a runtime API socket in the abstract namespace (no file to clean up, no path length limit) for
  `show stat` (server states) and `set server ... state` (take a server out by hand).
"""

from __future__ import annotations

import contextlib
import csv
import io
import resource
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from controller.core.budget import Budget
from controller.core.errors import PermanentError, TemporaryError
from testbed.addresses import HostPort
from testbed.harness.supervising import Supervised
from testbed.harness.waiting import wait_for

BACKEND = "servers"
Balance = Literal["leastconn", "roundrobin"]
MAXCONN = 30_000
_SUN_PATH_BYTES = 108
_FDS_RESERVED = 200
"""File descriptors HAProxy needs besides two per connection (listeners, health checks, runtime API)."""


@dataclass(frozen=True)
class HealthCheck:
    """How HAProxy decides a server is in rotation (see the module docstring for why these values)."""

    path: str = "/readyz"
    inter_ms: int = 500
    """Time between two checks of one server."""
    fall: int = 2
    """Consecutive failed checks that take a server out of rotation."""
    rise: int = 1
    """Consecutive good checks that put it back."""
    timeout_ms: int = 1000
    """A check unanswered this long failed (a SIGSTOPped server accepts the TCP connection, then says nothing)."""

    down_inter_ms: int = 500
    """Checks of a server that is down (new, back from maint): it rejoins fast; the drain never waits on it."""

    @classmethod
    def from_budget(cls, budget: Budget) -> HealthCheck:
        """The checks the budget's deregistration time assumes (`Budget.lb_deregistration_s`)."""
        return cls(
            inter_ms=max(1, round(budget.lb_check_interval_s * 1000)),
            fall=budget.lb_unhealthy_threshold,
            timeout_ms=max(1, round(budget.lb_check_timeout_s * 1000)),
        )


def fitting_maxconn(fd_hard_limit: int | None = None) -> int:
    """The largest maxconn (at most MAXCONN) whose file descriptors fit the hard open-files limit."""
    if fd_hard_limit is None:
        fd_hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if fd_hard_limit == resource.RLIM_INFINITY:
        return MAXCONN
    return max(1, min(MAXCONN, (fd_hard_limit - _FDS_RESERVED) // 2))


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def render_config(
    budget: Budget,
    servers: Sequence[tuple[str, HostPort]],
    *,
    frontend: HostPort,
    runtime_socket: str,
    health: HealthCheck | None = None,
    maxconn: int = MAXCONN,
    balance: Balance = "leastconn",
) -> str:
    """The haproxy.cfg text for a frontend on `frontend` balancing over `servers` (name, address)."""
    health = health or HealthCheck.from_budget(budget)
    if not servers:
        raise PermanentError("haproxy: at least one server is needed")
    lines = [
        "# rendered by drainctl's testbed harness from the timer budget",
        "global",
        f"    maxconn {maxconn}",
        f"    stats socket abns@{runtime_socket} level admin",
        "",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    option redispatch",
        "    retries 3",
        "    timeout connect 5s",
        "    timeout http-request 10s",
        "    timeout client 30s",
        "    timeout server 30s",
        f"    timeout tunnel {_ms(budget.lb_idle_timeout_s)}",
        f"    timeout check {health.timeout_ms}ms",
        "",
        "frontend websockets",
        f"    bind {frontend}",
        f"    maxconn {maxconn}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        f"    balance {balance}",
        f"    option httpchk GET {health.path}",
        "    http-check expect status 200",
        f"    default-server check inter {health.inter_ms}ms fall {health.fall} rise {health.rise}"
        f" downinter {min(health.down_inter_ms, health.inter_ms)}ms",
    ]
    lines += [f"    server {name} {address}" for name, address in servers]
    return "\n".join(lines) + "\n"


class LoadBalancer:
    """A running HAProxy: where clients connect, and which servers it routes to."""

    def __init__(self, process: Supervised, frontend: HostPort, runtime_socket: str) -> None:
        self.process = process
        self.frontend = frontend
        self.pid = process.pid
        self._runtime_socket = runtime_socket

    def __repr__(self) -> str:
        return f"LoadBalancer(frontend={self.frontend}, pid={self.pid})"

    @property
    def runtime_api(self) -> str:
        """The runtime API socket as controller.yaml's `rotation.haproxy.socket` names it."""
        return f"abns@{self._runtime_socket}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.frontend}"

    @property
    def http_url(self) -> str:
        return f"http://{self.frontend}"

    def command(self, line: str, *, timeout_s: float = 10.0) -> str:
        """Run one runtime API command (`show stat`, `set server servers/A state maint`) and return its output."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                # HAProxy binds abstract sockets with the whole sun_path, NUL-padded: connect to the same name.
                sock.connect(("\0" + self._runtime_socket).ljust(_SUN_PATH_BYTES, "\0"))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise TemporaryError(f"haproxy runtime API: {line!r} failed: {exc}") from exc
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """Each server's state as HAProxy reports it: "UP", "DOWN", "MAINT", or transitional ("UP 1/2")."""
        text = self.command("show stat").removeprefix("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    def wait_state(self, name: str, state: str, timeout_s: float = 30.0) -> None:
        """Wait until HAProxy puts server `name` in `state` ("UP", "DOWN", "MAINT"); transitions count as
        the state they still are ("UP 1/2" is UP)."""

        def reached() -> bool:
            current = self.server_states().get(name, "")
            return current.split(" ")[0] == state

        wait_for(reached, timeout_s=timeout_s, what=f"haproxy to mark server {name} {state}")

    def set_server_state(self, name: str, state: str) -> None:
        """Take a server out by hand ("maint", "drain") or put it back ("ready")."""
        output = self.command(f"set server {BACKEND}/{name} state {state}").strip()
        if output:
            raise PermanentError(f"haproxy: set server {name} state {state}: {output}")

    def ready(self) -> bool:
        with contextlib.suppress(TemporaryError):
            return bool(self.server_states())
        return False
