"""The metrics listener: what dashboards see after a restart, and what the API's `/metrics` serves.

The values of each metric along every drain path are checked where the paths are (tests/controller/engine).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from controller.api import build_app
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, make_world, metric
from tests.support.tasks import async_test

TOKEN = "api-token-for-tests"


@async_test
async def test_a_restarted_controller_shows_the_drains_it_resumed_in_their_phase(tmp_path: Path) -> None:
    clock = FakeClock()
    hosts = {"A": FakeHost(clock, sockets=300, behaviour="ignore"), "B": FakeHost(clock)}
    first = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=2)
    first.engine.submit(first.notice("A", in_s=60))
    first.engine.submit(first.notice("B", in_s=60))
    await first.advance(1.0)
    first.store.close()

    second = make_world(tmp_path / "journal.db", hosts=hosts, clock=clock, slots=2,
                        store=SqliteJournal(tmp_path / "journal.db"))

    assert metric(second, "drainctl_instances", {"phase": "verifying"}) == 1, "A was resumed mid-drain"
    assert metric(second, "drainctl_instances", {"phase": "released"}) == 1, "B had finished"
    assert metric(second, "drainctl_instances", {"phase": "pending"}) == 0


@async_test
async def test_the_apis_metrics_are_the_engines_metrics_listener(tmp_path: Path) -> None:
    world = make_world(tmp_path / "journal.db")
    world.engine.submit(world.notice("A", in_s=60))
    await world.settle()

    async with TestClient(TestServer(build_app(world.engine, TOKEN))) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        text = await response.text()

    assert response.status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("drainctl_drains_total", (("outcome", "graceful"),))] == 1
    assert samples[("drainctl_events_total", (("disposition", "started"), ("source", "local")))] == 1
