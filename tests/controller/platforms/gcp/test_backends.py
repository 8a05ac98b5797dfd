"""issue 15, GCP: the out-of-rotation step observes the backend service's health of the instance (getHealth, through
the real Compute API client against the fake Compute API): it ends once the readiness check voted the instance
UNHEALTHY, at once when the MIG is already deleting it, and on the budget's timer when the API refuses or fails.

The host is the smallest one that can leave rotation: a real HTTP `/readyz` on loopback that answers 503 from
the moment the step asks it to turn not ready; the fake's health checker probes it as GCP's does.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from controller.core.budget import Budget
from controller.core.clocks import SystemClock
from controller.engine.rotating import Rotated, Rotation
from controller.platforms.gcp.backends import BackendHealth, BackendService
from controller.platforms.gcp.compute import Anonymous, ComputeApi
from tests.controller.platforms.support import IdleApp
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support.tasks import async_test

BUDGET = Budget(lb_check_interval_s=2.0, lb_unhealthy_threshold=3, lb_check_timeout_s=2.0)
"""8 s of deregistration: far longer than the fake's checks take to vote (0.2 s x 2)."""
SHORT = Budget(lb_check_interval_s=1.0, lb_unhealthy_threshold=2, lb_check_timeout_s=0.5)
"""2.5 s: the timer cases end soon, after more than one look at a failing API (1 s apart, its default delay)."""
MIG = ["api-0", "api-1"]


class ReadyzHost(IdleApp):
    """An app with a real `/readyz`: 200 until `not_ready()` is called, then 503 (still serving)."""

    def __init__(self) -> None:
        self.ready = True
        self.url = ""

    async def not_ready(self) -> bool | None:
        self.ready = False
        return False

    async def readyz(self, _request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)


@pytest.fixture
def fake() -> Iterator[Handle[FakeCompute]]:
    compute = FakeCompute(check_interval_s=0.2, check_timeout_s=0.2, unhealthy_threshold=2, healthy_threshold=2)
    with serve(compute, name="fake-compute") as handle:
        handle.add_group("us-central1", "api", MIG)
        handle.add_backend_service("api-backend", [("us-central1", "api")])
        yield handle


@contextlib.asynccontextmanager
async def _host() -> AsyncIterator[ReadyzHost]:
    host = ReadyzHost()
    app = web.Application()
    app.router.add_get("/readyz", host.readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host.url = f"http://127.0.0.1:{runner.addresses[0][1]}/readyz"
    try:
        yield host
    finally:
        await runner.cleanup()


async def _take_out(fake: Handle[FakeCompute], host: ReadyzHost, budget: Budget, instance: str = "api-1") -> Rotated:
    api = ComputeApi(project="proj", credentials=Anonymous(), base_url=fake.url, timeout_s=2.0)
    try:
        health = BackendHealth(api, [BackendService("api-backend")], [api.group_url("us-central1", "api")])
        rotation = Rotation(budget=budget, clock=SystemClock(), balancers=[health.balancer(interval_s=0.1)],
                            poll_s=0.05)
        return await rotation.take_out(instance, host)
    finally:
        await api.aclose()


@async_test
async def test_the_step_ends_when_the_backend_service_sees_the_instance_unhealthy(fake: Handle[FakeCompute]) -> None:
    async with _host() as host:
        fake.check_readiness("api-1", host.url)
        fake.check_readiness("api-0", host.url.replace("/readyz", "/missing"))  # api-0 fails: not ours to watch
        assert fake.health_of("api-1") == "HEALTHY"

        rotated = await _take_out(fake, host, BUDGET)

    assert rotated.how == "observed", rotated
    assert rotated.detail.startswith("gcp backend service api-backend stopped routing to it")
    assert [state for name, state, _ in fake.health_changes if name == "api-1"] == ["UNHEALTHY"]
    bodies = {r.body for r in fake.health_checks()}
    assert [json.loads(body) for body in bodies] == [{"group": "https://www.googleapis.com/compute/v1/projects/proj/"
                                                      "regions/us-central1/instanceGroups/api"}], "the group's URL"


@async_test
async def test_a_mig_deletion_already_took_the_instance_out_so_the_first_look_ends_the_step(
    fake: Handle[FakeCompute],
) -> None:
    fake.mark("api-1", "DELETING", status="PENDING_STOP", shutdown_s=60)
    async with _host() as host:
        rotated = await _take_out(fake, host, BUDGET)

    assert rotated.how == "observed", rotated
    assert len(fake.health_checks()) == 1, "one getHealth: the MIG had removed it from its group"
    assert fake.health_of("api-1") == "HEALTHY", "not a failed check: the group no longer lists it"


@pytest.mark.parametrize("status", [403, 429, 503])
@async_test
async def test_an_api_that_refuses_or_fails_falls_back_to_the_timer_and_is_logged_once(
    fake: Handle[FakeCompute], status: int, caplog: pytest.LogCaptureFixture,
) -> None:
    fake.fail_next(10**6, status, retry_after="0" if status == 429 else None, match="getHealth")
    with caplog.at_level(logging.WARNING, logger="drainctl.balancers"):
        async with _host() as host:
            rotated = await _take_out(fake, host, SHORT)

    assert (rotated.how, rotated.detail) == ("timer", "lb_deregistration_s (2.5 s) passed")
    asked = fake.health_checks()
    assert {r.status for r in asked} == {status}
    assert len(asked) == 1 if status == 403 else len(asked) >= 2, "a refusal is asked again only a minute later"
    warnings = [r for r in caplog.records if "cannot be observed" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert str(status) in warnings[0].getMessage()


@async_test
async def test_an_api_that_answers_again_is_observed_again_and_says_so_once(
    fake: Handle[FakeCompute], caplog: pytest.LogCaptureFixture,
) -> None:
    fake.fail_next(2, 503, match="getHealth")
    with caplog.at_level(logging.INFO, logger="drainctl.balancers"):
        async with _host() as host:
            fake.check_readiness("api-1", host.url)
            rotated = await _take_out(fake, host, BUDGET)

    assert rotated.how == "observed", rotated
    assert [r.status for r in fake.health_checks()][:3] == [503, 503, 200]
    said = [r.getMessage() for r in caplog.records]
    assert sum("cannot be observed" in m for m in said) == 1 and sum("answers again" in m for m in said) == 1, said
