"""The HA bed: a real PostgreSQL journal shared by two `drainctl run` processes with a leader lease.

Built on `drain_setup.start_bed` (servers, HAProxy, agents, Prometheus, a swarm) without its controller; each
controller gets the same config but its own holder name and API port (advertised to the other through the
lease row). Lease and renew are short (3 s, 1 s) so takeovers take seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testbed.harness import ControllerProcess
from testbed.harness.ports import free_port
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import SETTLE_S, Bed
from tests.support.postgres import PostgresServer

LEASE_S = 3.0
RENEW_S = 1.0


def ha_config(bed: Bed, server: PostgresServer, url: str, holder: str) -> dict[str, Any]:
    """controller.yaml for one of the pair: the shared journal, the lease, its own API address."""
    config = bed.fleet.controller_config(list(bed.agents.values()), prometheus=bed.prometheus)
    listen = free_port()
    config["journal"] = url
    config["journal_password_file"] = str(server.password_file)
    config["api"] = {**config["api"], "listen": str(listen)}
    config["leader"] = {"kind": "postgres", "holder": holder, "lease_s": LEASE_S, "renew_s": RENEW_S,
                        "advertise_url": f"http://{listen}"}
    return config


def ready(controller: ControllerProcess) -> bool:
    """`/readyz` is 200: this one is the leader."""
    return controller.request("GET", "/readyz").status_code == 200


def wait_leader(controller: ControllerProcess, what: str) -> None:
    wait_for(lambda: ready(controller), timeout_s=SETTLE_S, what=what)


def leader_metrics(controller: ControllerProcess) -> Mapping[str, float]:
    return {name: controller.metric(name) for name in
            ("drainctl_leader", "drainctl_leader_epoch", "drainctl_journal_fenced_writes_total")}
