"""issue 15, Kubernetes: the out-of-rotation step observes the pod's endpoint in its Service's EndpointSlices
(the real API client against the fake API server): it ends once the endpoint is not ready in every slice, at
once when the pod is being deleted (its endpoint turns terminating), and on the budget's timer when the API
server fails or refuses.

The host is the smallest one that can leave rotation; its not-ready call stands for the app turning `/readyz`
503, and the test plays the kubelet whose readiness probe then fails (`set_ready(False)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from controller.core.budget import Budget
from controller.core.clocks import SystemClock
from controller.engine.rotating import Rotated, Rotation
from controller.platforms.kubernetes.endpoints import ServiceEndpoints
from tests.controller.platforms.kubernetes.support import api_for
from tests.controller.platforms.support import IdleApp
from tests.fakes.kubernetes import Handle, serve
from tests.support import until
from tests.support.tasks import async_test

BUDGET = Budget(lb_check_interval_s=2.0, lb_unhealthy_threshold=3, lb_check_timeout_s=2.0)
"""8 s of deregistration: the observed cases end long before it."""
SHORT = Budget(lb_check_interval_s=1.0, lb_unhealthy_threshold=2, lb_check_timeout_s=0.5)
"""2.5 s: the timer cases end soon."""


class LeavingPod(IdleApp):
    """A pod's app that turns not ready when asked."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def not_ready(self) -> bool | None:
        self.asked.set()
        return False


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        for name in ("api-0", "api-1", "api-2"):
            handle.add_pod(name, ip=f"10.0.0.{name[-1]}", labels={"app": "api"})
        handle.add_service("api", {"app": "api"})
        yield handle


@contextlib.contextmanager
def _rotation(fake: Handle, budget: Budget) -> Iterator[Rotation]:
    api = api_for(fake)
    try:
        looks = ServiceEndpoints(api, namespace="default", service="api")
        yield Rotation(budget=budget, clock=SystemClock(), balancers=[looks.balancer(interval_s=0.1)], poll_s=0.05)
    finally:
        api.close()


def _lists(fake: Handle) -> int:
    return len(fake.requests_where("GET", "/endpointslices"))


@async_test
async def test_the_step_ends_once_the_pods_endpoint_is_not_ready_in_every_slice(fake: Handle) -> None:
    fake.call(lambda k: setattr(k, "slice_size", 1))  # three slices of one endpoint: the pod is in one of them
    fake.stale_slice("api", "api-1")  # and a lagging fourth slice still lists it ready
    pod = LeavingPod()
    with _rotation(fake, BUDGET) as rotation:
        step = asyncio.create_task(rotation.take_out("api-1", pod))
        await pod.asked.wait()
        fake.set_ready("api-1", False)  # the kubelet's readiness probe failed
        await until(lambda: _lists(fake) >= 3, what="a few looks while the stale slice still lists api-1 ready")
        assert not step.done(), "ready in one slice is still routed"
        fake.call(lambda k: k.stale.clear())  # the EndpointSlice controller caught up
        rotated: Rotated = await step

    assert rotated.how == "observed", rotated
    assert rotated.detail.startswith("kubernetes service default/api stopped routing to it")
    selectors = {r.query.get("labelSelector") for r in fake.requests_where("GET", "/endpointslices")}
    assert selectors == {"kubernetes.io/service-name=api"}


@async_test
async def test_a_pod_being_deleted_is_already_out_so_the_first_look_ends_the_step(fake: Handle) -> None:
    fake.call(lambda k: k.delete_pod("api-1", grace_s=30))

    with _rotation(fake, BUDGET) as rotation:
        rotated = await rotation.take_out("api-1", LeavingPod())

    assert rotated.how == "observed", rotated
    assert _lists(fake) == 1, "one list: the endpoint was terminating, not ready"


@pytest.mark.parametrize("status", [403, 429, 500])
@async_test
async def test_an_api_server_that_refuses_or_fails_falls_back_to_the_timer_and_is_logged_once(
    fake: Handle, status: int, caplog: pytest.LogCaptureFixture,
) -> None:
    fake.fail_next(10**6, status, match="endpointslices", retry_after="1" if status == 429 else None)
    with caplog.at_level(logging.WARNING, logger="drainctl.balancers"), _rotation(fake, SHORT) as rotation:
        rotated = await rotation.take_out("api-1", LeavingPod())

    assert (rotated.how, rotated.detail) == ("timer", "lb_deregistration_s (2.5 s) passed")
    assert _lists(fake) == 1 if status == 403 else _lists(fake) >= 2
    warnings = [r.getMessage() for r in caplog.records if "cannot be observed" in r.getMessage()]
    assert len(warnings) == 1 and f"HTTP {status}" in warnings[0], warnings


@async_test
async def test_a_pod_the_service_does_not_select_is_not_routed(fake: Handle) -> None:
    fake.add_pod("worker-0", ip="10.0.1.1", labels={"app": "worker"})
    api = api_for(fake)
    try:
        looks = ServiceEndpoints(api, namespace="default", service="api")
        assert await looks.look() == {"api-0": True, "api-1": True, "api-2": True}
        assert await looks.balancer(interval_s=0.0).routing("worker-0") is False
    finally:
        api.close()


class Listed:
    """Slices as an API server may serialize them (parsing only: the fake never leaves `ready` out)."""

    def __init__(self, *slices: Any) -> None:
        self.slices = list(slices)

    async def list_endpoint_slices(self, namespace: str, service: str, *, timeout_s: float | None = None) -> list[Any]:
        return self.slices


@async_test
async def test_an_endpoint_without_a_ready_condition_counts_as_ready_and_one_without_a_pod_is_ignored() -> None:
    pod = {"kind": "Pod", "name": "api-0"}
    listed = Listed({"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {}, "targetRef": pod},
                                   {"addresses": ["10.0.0.9"], "conditions": {"ready": True}}]},
                    {"endpoints": None})
    assert await ServiceEndpoints(listed, namespace="default", service="api").look() == {"api-0": True}
