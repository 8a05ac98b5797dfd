"""issue 15 on GCP, through the controller assembled from controller.yaml (`rotation.enabled`,
`sources.gcp.backend_health`): the drain's first step ends on the backend service's health of the instance.

Real parts: a reference server with WebSocket clients and its not-ready hook, the node agent beside it, the
controller in this process. Only the Compute API is a fake; its health checker probes the server's real
`/readyz` (every 0.2 s, UNHEALTHY after 2 failures), as GCP's readiness check does.

- An operator's drain: the server turns not ready, the fake's checker votes it UNHEALTHY, and only then is the
  first socket closed: the journal says "out of rotation (observed)", well inside the budget's 15 s timer.
- A MIG deletion: the MIG has already taken the instance out of its group, so the first look ends the step.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.models import Phase
from testbed.harness import Fleet
from tests.controller.platforms.support import Host, close_all, controller, controller_config, open_clients, start_host
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support import TEST_BUDGET, until
from tests.support.tasks import async_test

MIG = ["api-0", "api-1"]
World = tuple[Handle[FakeCompute], Host, dict[str, Any]]


@pytest.fixture
def gcp(tmp_path: Path) -> Iterator[World]:
    compute = FakeCompute(check_interval_s=0.2, check_timeout_s=0.2, unhealthy_threshold=2, healthy_threshold=2)
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet, serve(compute, name="fake-compute") as fake:
        fake.add_group("us-central1", "api", MIG)
        fake.add_backend_service("api-backend", [("us-central1", "api")])
        server = fleet.start_server("api-1")
        app = {"drain_url": f"{server.admin_url}/admin/drain", "not_ready_url": f"{server.admin_url}/admin/not-ready",
               "token_file": str(_app_token(fleet, server.name, server.admin_token)), "timeout_s": 1.0}
        host = start_host(fleet, "api-1", extra={"app": app})
        fake.check_readiness("api-1", f"{server.http_url}/readyz")
        source = {"enabled": True, "project": "proj", "groups": [{"region": "us-central1", "name": "api"}],
                  "api_url": fake.url, "auth": "anonymous", "poll_interval_s": 0.25, "window_s": 60,
                  "backend_health": {"backend_services": [{"name": "api-backend"}], "interval_s": 0.1}}
        config = controller_config(tmp_path, [host], gcp=source)
        config["sources"]["local"] = {"enabled": False}
        config["rotation"] = {"enabled": True, "poll_s": 0.05}
        yield fake, host, config


def _app_token(fleet: Fleet, name: str, token: str) -> Path:
    path = fleet.workdir / f"{name}-app.token"
    path.write_text(token)
    return path


def _out_of_rotation(steps: list[Any]) -> Any:
    [line] = [t for t in steps if t.step.startswith("out of rotation")]
    return line


@async_test
async def test_an_operators_drain_closes_the_first_socket_only_after_the_backend_saw_it_unhealthy(gcp: World) -> None:
    fake, host, config = gcp
    async with controller(config) as running:
        clients = await open_clients(host.server, 5)
        assert fake.health_of("api-1") == "HEALTHY"
        running.engine.drain("api-1")
        await until(lambda: all(ws.close_code is not None for ws in clients), what="api-1's clients to close")
        await until(lambda: (d := running.engine.get("api-1")) is not None and d.phase is not Phase.DRAINING,
                    what="the drain to be verified")
        [drain] = running.engine.history(instance="api-1")
        steps = running.engine.journal(drain.id)

    rotated = _out_of_rotation(steps)
    assert rotated.step == "out of rotation (observed)", rotated
    assert rotated.detail.startswith("gcp backend service api-backend stopped routing to it"), rotated.detail
    [(_, _, unhealthy_at)] = [c for c in fake.health_changes if c[:2] == ("api-1", "UNHEALTHY")]
    assert unhealthy_at <= rotated.at, "the step ended only after the backend service saw it unhealthy"
    await close_all(clients)


@async_test
async def test_a_mig_deletion_already_took_the_instance_out_so_the_drain_does_not_wait_for_the_checks(
    gcp: World,
) -> None:
    fake, host, config = gcp
    async with controller(config) as running:
        clients = await open_clients(host.server, 5)
        fake.mark("api-1", "DELETING", status="PENDING_STOP", shutdown_s=60)
        await until(lambda: all(ws.close_code is not None for ws in clients), what="api-1's clients to close")
        [drain] = running.engine.history(instance="api-1")
        steps = running.engine.journal(drain.id)

    rotated = _out_of_rotation(steps)
    assert rotated.step == "out of rotation (observed)", rotated
    voted = [at for name, _, at in fake.health_changes if name == "api-1"]
    assert all(rotated.at <= at for at in voted), "the step ended before the checks could vote it unhealthy"
    await close_all(clients)
