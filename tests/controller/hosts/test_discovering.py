"""The hold of events for instances not discovered yet: kept until a fresh round answered, then passed on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from controller.core.errors import TemporaryError
from controller.core.inventory import Inventory
from controller.core.members import Member
from controller.core.models import EventKind, LifecycleEvent
from controller.core.ports import UnknownHost
from controller.hosts.discovering import Awaiting, Discovery
from controller.hosts.fleet import Fleet
from tests.support import running, until
from tests.support.tasks import async_test


class Platform:
    """Lists `api-new` only from its second round on (it was created after the first)."""

    def __init__(self) -> None:
        self.rounds = 0

    async def discover(self) -> list[Member]:
        self.rounds += 1
        names = ["api-old"] + (["api-new"] if self.rounds > 1 else [])
        return [Member(n, "api", f"http://10.0.0.{i}:9100", "t", "gcp") for i, n in enumerate(names, start=2)]


class Events:
    name = "gcp"

    def __init__(self, *instances: str) -> None:
        self._instances = instances

    async def watch(self) -> AsyncIterator[LifecycleEvent]:
        for instance in self._instances:
            yield LifecycleEvent.create(instance=instance, kind=EventKind.TERMINATE, not_after=2e9, source="gcp",
                                        ref=instance)
        await asyncio.Event().wait()


@async_test
async def test_an_event_for_an_unknown_instance_waits_for_a_fresh_round_and_is_then_passed_on() -> None:
    fleet = Fleet(Inventory(), {}, timeout_s=1.0)
    platform = Platform()
    discovery = Discovery("gcp", platform, fleet, interval_s=3600.0)
    taken: list[tuple[str, bool]] = []

    async def engine() -> None:
        async for event in Awaiting(Events("api-old", "api-new", "api-never"), fleet).watch():
            taken.append((event.instance, event.instance in fleet.inventory))

    await discovery.round()
    async with running(discovery.run()), running(engine()):
        await until(lambda: len(taken) == 3, what="all three events passed on")

    assert taken[0] == ("api-old", True), "a known instance's event passes at once"
    assert sorted(taken[1:]) == [("api-never", False), ("api-new", True)], (
        "held until the round that lists api-new; api-never passed on (to be refused) after it")
    assert platform.rounds >= 2, "the unknown instances asked for a round (the interval is an hour)"


@async_test
async def test_before_a_discoverys_first_round_an_unknown_instance_is_a_temporary_error_not_an_unknown_one() -> None:
    """A controller restarted mid-drain of a discovered instance: the resumed drain asks for its host before the
    first round answered; it must be retried (temporary), not failed (unknown instance)."""
    fleet = Fleet(Inventory(), {}, timeout_s=1.0)
    discovery = Discovery("gcp", Platform(), fleet, interval_s=3600.0)
    with pytest.raises(TemporaryError):
        fleet.host("api-old")
    await discovery.round()
    found = fleet.host("api-old").base_url
    with pytest.raises(UnknownHost):
        fleet.host("api-never")
    await fleet.aclose()

    assert found == "http://10.0.0.2:9100"


@async_test
async def test_an_answered_round_exports_its_size_and_how_long_it_took() -> None:
    registry = CollectorRegistry()
    fleet = Fleet(Inventory(), {}, timeout_s=1.0, registry=registry)
    await Discovery("gcp", Platform(), fleet, interval_s=3600.0).round()
    took = registry.get_sample_value("drainctl_discovery_round_duration_seconds", {"platform": "gcp"})
    held = registry.get_sample_value("drainctl_discovery_instances", {"platform": "gcp"})
    assert took is not None and 0 <= took < 60 and held == 1
