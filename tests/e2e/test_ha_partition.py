"""Issue 10: the leader cut off from Postgres by the network (its packets dropped, its connections left
half-open, nothing refused), while the standby still reaches the database.

Each controller runs in its own network namespace (tests/support/netns.py) and reaches the agents, Prometheus
and Postgres through a veth; a cut drops one namespace's packets to and from Postgres's port. A drain of A is
under way throughout, and two cuts follow each other:

1. The leader, cut off with nothing to write, stops acting at its renew deadline by its own clock, before the
   standby may take the lease (which it does once the row expired by the database's clock); healed, it rejoins
   as the standby and points writers at the new leader.
2. The new leader is cut off just as an operator asks it to drain A too: the journal statements that request
   needs hang on the half-open connection (and its event loop with them: the journal is synchronous), so it
   cannot look at its deadline. The other takes over; the partition heals while the hung statement is still
   being retransmitted; it reaches the database late, and the fence refuses the write.

Counted where it cannot be faked: the app logs each drain request it receives, the agent counts each one it
passed on, the lease row's expiry comes from the database's own clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from controller.core.budget import Budget
from testbed.harness import ControllerProcess, Fleet
from testbed.harness.exposition import metric_sum
from testbed.harness.fleet import DRAINCTL
from testbed.harness.waiting import wait_for
from tests.e2e.drain_setup import SETTLE_S, Bed, app_drain_requests, journal, start_bed
from tests.e2e.ha_setup import ha_config, leader_metrics, ready, wait_leader
from tests.support import SLOW_DRAIN_BUDGET
from tests.support.marks import needs_root
from tests.support.netns import Namespace, namespace
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.e2e, needs_root]

MakeFleet = Callable[[Budget], Fleet]
LEASE_S = 1.5
RENEW_S = 0.5
"""Shorter than ha_setup's 3 s / 1 s: the standby must take over while the cut-off leader's hung write is
still being retransmitted (the journal's `tcp_user_timeout` gives it up after 4 s), so the heal reaches it."""


@pytest.fixture
def hosts() -> Iterator[tuple[Namespace, Namespace]]:
    with namespace("a") as one, namespace("b") as two:
        yield one, two


def lease_row(db: psycopg.Connection[Any]) -> tuple[int, float]:
    """(epoch, expires_at as unix seconds) of the lease row, by the database's clock."""
    row = db.execute("SELECT epoch, extract(epoch FROM expires_at)::float8 FROM drainctl_lease").fetchone()
    assert row is not None
    return int(row[0]), float(row[1])


def start_in(ns: Namespace, bed: Bed, config: dict[str, Any]) -> ControllerProcess:
    """`drainctl run` inside the namespace: every loopback address of `config` becomes our side of the veth."""
    config = json.loads(json.dumps(config).replace("127.0.0.1", ns.host_ip))
    port = config["api"]["listen"].rsplit(":", 1)[1]
    config["api"]["listen"] = f"{ns.inside_ip}:{port}"
    config["leader"].update(lease_s=LEASE_S, renew_s=RENEW_S, advertise_url=f"http://{ns.inside_ip}:{port}")
    path = bed.fleet.workdir / f"controller-{ns.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = bed.fleet.start_command(f"controller-{ns.name}", ns.exec_argv([*DRAINCTL, "run", "--config", str(path)]))
    token = Path(config["api"]["token_file"]).read_text(encoding="utf-8").strip()
    return ControllerProcess(process, process.wait_event("ready", SETTLE_S), token=token)


def logged_at(controller: ControllerProcess, text: str) -> datetime:
    """When the controller first logged a line containing `text` (its log's own time stamp)."""
    line = next(line for line in controller.log_text().splitlines() if text in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def after_a_renewal(db: psycopg.Connection[Any]) -> tuple[int, float]:
    """Wait for the holder's next renewal; the row then (a cut right after leaves it its whole deadline)."""
    _, expires = lease_row(db)

    def renewed() -> tuple[int, float] | None:
        row = lease_row(db)
        return row if row[1] > expires else None

    return wait_for(renewed, timeout_s=SETTLE_S, what="the leader to renew its lease", interval_s=0.02)


def taken_from(db: psycopg.Connection[Any], epoch: int) -> tuple[int, float]:
    """Wait for another controller to take the lease; the row as first seen with the new epoch."""

    def taken() -> tuple[int, float] | None:
        row = lease_row(db)
        return row if row[0] != epoch else None

    return wait_for(taken, timeout_s=SETTLE_S, what="the standby to take the lease", interval_s=0.02)


def redirected_to(controller: ControllerProcess, leader: ControllerProcess) -> bool:
    """A write asked of `controller` is refused with the leader's address: it is a standby that knows it."""
    answer = controller.request("POST", "/v1/instances/A/reset")
    return answer.status_code == 503 and answer.headers.get("X-Drainctl-Leader") == leader.url


def test_a_leader_cut_off_from_postgres_stops_in_time_and_a_late_write_of_a_cut_off_leader_is_fenced(
    fleets: MakeFleet, postgres_server: PostgresServer, postgres_url: str, hosts: tuple[Namespace, Namespace]
) -> None:
    for ns in hosts:
        postgres_server.allow(ns.network)
    bed = start_bed(fleets(SLOW_DRAIN_BUDGET), {"A": None}, clients_per_server=300, controller=False)
    a, on_a = bed.servers["A"], bed.clients_on["A"]
    first = start_in(hosts[0], bed, ha_config(bed, postgres_server, postgres_url, "ctl-1"))
    wait_leader(first, "the first controller to lead")
    second = start_in(hosts[1], bed, ha_config(bed, postgres_server, postgres_url, "ctl-2"))
    assert not ready(second)
    retirement = bed.fleet.platform(lb=bed.lb).retire(a, agent=bed.agents["A"], notice_s=60)
    wait_for(lambda: a.open_sockets() <= on_a - 40, timeout_s=SETTLE_S, what="A's drain to be under way")
    password = postgres_server.password_file.read_text().strip()
    with psycopg.connect(postgres_url, password=password, autocommit=True) as db:
        # 1. The leader cut off with nothing to write: its own deadline stops it before the lease expires.
        epoch, renewed_until = after_a_renewal(db)
        hosts[0].cut(postgres_server.port)
        new_epoch, new_expires = taken_from(db, epoch)
        hosts[0].heal()
        assert new_epoch == epoch + 1
        assert new_expires >= renewed_until + LEASE_S - 0.05, "taken before the old lease expired"
        wait_leader(second, "the standby to lead")
        stopped, started = logged_at(first, "lost lease"), logged_at(second, f"with epoch {new_epoch}")
        assert stopped < started, "the cut-off leader must stop acting before the standby starts"
        wait_for(lambda: redirected_to(first, second), timeout_s=SETTLE_S, what="the old leader to rejoin")

        # 2. The new leader cut off in the middle of an operator's request: the fence refuses its late write.
        epoch, _ = after_a_renewal(db)
        hosts[1].cut(postgres_server.port)
        answers: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answers.append(
            second.request("POST", "/v1/drains", json={"instance": "A"})), daemon=True)
        asking.start()
        taken_from(db, epoch)
        hosts[1].heal()
    asking.join(SETTLE_S)
    [answer] = answers
    assert answer.status_code == 503 and "refused" in answer.json()["error"], answer.text
    assert leader_metrics(second)["drainctl_journal_fenced_writes_total"] >= 1
    assert "write refused by the fence" in second.log_text()

    wait_leader(first, "the first controller to lead again")
    retirement.wait_deleted(SETTLE_S)
    wait_for(lambda: redirected_to(second, first), timeout_s=SETTLE_S, what="the fenced leader to rejoin")
    assert leader_metrics(second)["drainctl_leader"] == 0 and leader_metrics(first)["drainctl_leader"] == 1

    assert app_drain_requests(a) == 1, "A's drain was requested twice"
    assert retirement.agent_metrics is not None
    assert metric_sum(retirement.agent_metrics, "drainctl_agent_drains_requested_total", where="agent") == 1
    assert retirement.released_by == "controller" and retirement.released_in_time
    (drain,) = first.drains_of("A")
    assert (drain["phase"], drain["outcome"]) == ("released", "graceful")
    steps = [line["step"] for line in journal(first, drain["id"])]
    assert steps.count("drain requested") == 1
    assert "event merged" not in steps, "the fenced request left a trace"
