"""The cloud load balancer and the clients of the box: HAProxy on the host in front of the VMs' app port.

The staging stack's load balancer is the clouds' (not in the box); HAProxy from the testbed stands in for it,
checking each VM's `/readyz` on the app port as the cloud's health check does, and the testbed's Python swarm
connects through it. Both run under a testbed `Fleet` (torn down with it); `reload` rewrites the backends the
way the MIG's membership changes (the new VM added before the old one goes).
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path

from controller.core.budget import Budget
from controller.core.settings import HostPort
from testbed.harness import haproxy
from testbed.harness.fleet import Fleet
from testbed.harness.haproxy import LoadBalancer
from testbed.harness.ports import free_port
from tests.support import wait_until

START_S = 60.0


def start_balancer(fleet: Fleet, budget: Budget, backends: Sequence[tuple[str, str]], port: int,
                   config_path: Path) -> LoadBalancer:
    """HAProxy on a free loopback port over `backends` (name, VM address) on the app `port`; returns once
    every backend is UP in it."""
    frontend = free_port()
    runtime_socket = f"drainctl-box-lb-{os.getpid()}-{secrets.token_hex(6)}"
    servers = [(name, HostPort(address, port)) for name, address in backends]
    config_path.write_text(haproxy.render_config(budget, servers, frontend=frontend,
                                                 runtime_socket=runtime_socket,
                                                 maxconn=haproxy.fitting_maxconn()), encoding="utf-8")
    process = fleet.start_command("haproxy-box", [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config_path)],
                                  read_events=False)
    balancer = LoadBalancer(process, frontend, runtime_socket)
    wait_until(balancer.ready, within_s=START_S, what=f"haproxy on {frontend} (log {process.log_path})")
    for name, _ in backends:
        balancer.wait_state(name, "UP", timeout_s=START_S)
    return balancer


def sessions(balancer: LoadBalancer, server: str) -> int:
    """The sessions HAProxy holds open to one server now (its `scur`: upgraded WebSockets, once the
    refused handshakes of a draining server are over)."""
    text = balancer.command("show stat").removeprefix("# ")
    rows = csv.DictReader(io.StringIO(text))
    return sum(int(row["scur"] or 0) for row in rows
               if row.get("pxname") == haproxy.BACKEND and row.get("svname") == server)
