"""Verification: Prometheus with the kernel count as fallback and cross-check (zero only from the kernel)."""

from __future__ import annotations

import pytest

from controller.engine.verifying import Observation, Verifier
from controller.prometheus import PrometheusUnavailable
from tests.controller.engine.fakes import FakeClock, FakeGauge, FakeHost
from tests.support.tasks import async_test


@pytest.mark.parametrize(
    ("kernel", "prometheus", "zero_by", "count"),
    [
        (0, 0, "kernel", 0),
        (0, 12, "kernel", 0),  # Prometheus lags a scrape behind: the kernel's zero is the truth
        (5, 0, None, 5),  # the app's gauge says zero, the kernel still holds sockets: not verified
        (5, None, None, 5),  # Prometheus stale or unreachable: the kernel count alone
        (0, None, "kernel", 0),
        (None, 0, "prometheus", 0),  # the agent cannot answer: a fresh Prometheus zero verifies
        (None, 7, None, 7),
        (None, None, None, None),
    ],
)
def test_which_count_proves_zero(kernel: int | None, prometheus: int | None, zero_by: str | None,
                                 count: int | None) -> None:
    seen = Observation(kernel, prometheus)
    assert seen.zero_by == zero_by
    assert seen.count == count


@async_test
async def test_an_unreachable_prometheus_leaves_the_kernel_count() -> None:
    gauge = FakeGauge()
    gauge.error = PrometheusUnavailable("prometheus at http://127.0.0.1:9 unreachable")
    seen = await Verifier(gauge).observe("A", FakeHost(FakeClock(), sockets=3))
    assert seen.kernel == 3 and seen.prometheus is None
    assert seen.prometheus_error is not None and "unreachable" in seen.prometheus_error
    assert "kernel 3" in seen.describe()


@async_test
async def test_an_unreachable_agent_leaves_prometheus() -> None:
    gauge = FakeGauge()
    gauge.values["A"] = 4
    seen = await Verifier(gauge).observe("A", FakeHost(FakeClock(), behaviour="unreachable"))
    assert seen.kernel is None and seen.prometheus == 4 and seen.count == 4
    assert seen.kernel_error is not None and "unreachable" in seen.kernel_error


@async_test
async def test_without_prometheus_the_kernel_count_decides() -> None:
    seen = await Verifier(None).observe("A", FakeHost(FakeClock(), sockets=0))
    assert seen.zero_by == "kernel" and seen.prometheus_error == "not configured"
