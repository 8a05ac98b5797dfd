"""The demo's offline-time arithmetic: silent time on a stopped server counts, stuck clients count to the end."""

from __future__ import annotations

from typing import Any

import pytest

from testbed.scenarios.outages import client_outages


def _report(disconnects: list[dict[str, Any]], at_end: list[str | None]) -> dict[str, Any]:
    return {
        "clients": len(at_end),
        "disconnects": disconnects,
        "per_client": [{"client": i, "server": server} for i, server in enumerate(at_end)],
    }


def test_a_client_of_a_stopped_server_was_offline_since_the_stop_not_since_it_noticed() -> None:
    report = _report(
        [
            {"client": 0, "at": 104.0, "server": "old3", "offline_s": 0.5},  # stopped at 100, reset at 104
            {"client": 1, "at": 50.0, "server": "old1", "offline_s": 0.4},  # a graceful close, before any stop
        ],
        ["new1", "new1", "new2"],
    )

    outages = client_outages(report, stopped_at={"old3": 100.0}, ended_at=200.0)

    assert outages.max_s == pytest.approx(4.5)
    assert outages.over_limit == 0 and outages.stuck_at_end == 0 and outages.never_rejoined == 0
    assert outages.p99_s == pytest.approx(4.5) and outages.clients == 3


def test_clients_still_on_a_stopped_server_at_the_end_are_stuck_since_the_stop() -> None:
    report = _report([], ["old3", "old3", "new1"])

    outages = client_outages(report, stopped_at={"old3": 100.0}, ended_at=130.0)

    assert (outages.stuck_at_end, outages.over_limit, outages.max_s) == (2, 2, pytest.approx(30.0))


def test_a_client_that_never_rejoined_is_offline_until_the_end() -> None:
    report = _report([{"client": 0, "at": 120.0, "server": "old1", "offline_s": None}], [None])

    outages = client_outages(report, stopped_at={}, ended_at=126.0)

    assert (outages.never_rejoined, outages.max_s, outages.over_limit) == (1, pytest.approx(6.0), 1)
