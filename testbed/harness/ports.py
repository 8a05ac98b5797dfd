"""Free loopback ports for the processes that need a port in their config file (HAProxy, Prometheus).

Our own servers bind port 0 and print the port they got; HAProxy and Prometheus cannot, so the harness binds
port 0 itself, reads the port and releases it just before the child binds it. Another process can take it in
between: callers retry a start that fails (see `Fleet`), they do not pick fixed ports.
"""

from __future__ import annotations

import socket
import subprocess

from controller.core.errors import PermanentError
from testbed.addresses import HostPort


def free_port(host: str = "127.0.0.1") -> HostPort:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return HostPort(host, port)


def listening(address: HostPort) -> bool:
    """Whether any process listens on `address` (TCP), asked of the kernel with `ss`."""
    try:
        result = subprocess.run(
            ["ss", "-Hltn", f"src {address.host} and sport = :{address.port}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PermanentError(f"ss: cannot list listening sockets: {exc}") from exc
    return bool(result.stdout.strip())
