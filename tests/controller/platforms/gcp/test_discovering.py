"""GCP discovery against the wire-level Compute fake: the MIGs' instances become the inventory, with their agents'
addresses; errors (429 with Retry-After, 5xx, an expired token, a malformed answer) keep the inventory as it was;
an instance that leaves is dropped only once no drain of it is open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from controller.core.inventory import Inventory
from controller.hosts.discovering import Discovery
from controller.hosts.fleet import Fleet
from controller.platforms.gcp.compute import ComputeApi, StaticToken
from controller.platforms.gcp.discovering import Agents, GcpDiscovery
from controller.platforms.gcp.watching import Group
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support.tasks import async_test

TOKEN = "ya29.discovery"


@pytest.fixture
def fake() -> Iterator[Handle[FakeCompute]]:
    with serve(FakeCompute(page_size=1, require_token=TOKEN), name="fake-compute") as handle:
        handle.add_group("us-central1", "api", ["api-a", "api-b"])
        yield handle


class Bed:
    def __init__(self, fake: Handle[FakeCompute], *, address: str = "network_ip", token: str = TOKEN) -> None:
        self.registry = CollectorRegistry()
        self.inventory = Inventory()
        self.fleet = Fleet(self.inventory, {}, timeout_s=1.0, registry=self.registry)
        self.api = ComputeApi(project="proj", credentials=StaticToken(token), base_url=fake.url, attempts=3,
                              retry_initial_s=0.05, retry_max_s=2.0)
        agents = Agents(project="proj", port=9100, token="agent-token", address=address)
        found = GcpDiscovery(self.api, [Group("us-central1", "api")], agents)
        self.discovery = Discovery("gcp", found, self.fleet, interval_s=30.0, retry_max_s=5.0)

    def urls(self) -> dict[str, str]:
        return {name: member.agent_url for name in self.inventory if (member := self.fleet.member(name))}

    def metric(self, name: str) -> float | None:
        return self.registry.get_sample_value(name, {"platform": "gcp"})


@async_test
async def test_a_round_lists_every_page_and_gives_each_instance_its_agent_address(fake: Handle[FakeCompute]) -> None:
    bed = Bed(fake)
    assert await bed.discovery.round() == 30.0
    fake.add_instance("us-central1", "api", "api-new", network_ip="10.128.0.9")
    await bed.discovery.round()
    await bed.api.aclose()

    assert bed.urls() == {"api-a": "http://10.128.0.2:9100", "api-b": "http://10.128.0.3:9100",
                          "api-new": "http://10.128.0.9:9100"}
    assert dict(bed.inventory) == {"api-a": "api", "api-b": "api", "api-new": "api"}, "pool: the MIG's name"
    assert bed.metric("drainctl_discovery_instances") == 3
    assert {r.query.get("pageToken") for r in fake.lists()} >= {None, "1", "2"}, "every page was read"
    assert bed.fleet["api-new"] is bed.fleet.host("api-new"), "its agent is reachable through the fleet"


@async_test
async def test_the_dns_address_needs_no_instance_list(fake: Handle[FakeCompute]) -> None:
    bed = Bed(fake, address="dns")
    await bed.discovery.round()
    await bed.api.aclose()

    assert bed.urls()["api-a"] == "http://api-a.us-central1-a.c.proj.internal:9100"
    assert not [r for r in fake.requests if "aggregated" in r.path]


@async_test
async def test_a_429_is_waited_out_and_failed_rounds_keep_the_inventory(fake: Handle[FakeCompute]) -> None:
    bed = Bed(fake)
    fake.fail_next(1, 429, retry_after="1", match="pageToken=1")
    await bed.discovery.round()
    assert set(bed.inventory) == {"api-a", "api-b"}, "the 429 cost a pause, not the round"
    succeeded_at = bed.metric("drainctl_discovery_last_success_timestamp_seconds")

    fake.remove("api-b")
    # Every attempt (3) at the MIG listing fails; the instance listing runs beside it and succeeds. The 503s are
    # matched to one call so that a request the failed round cancelled in flight cannot reach the fake later and
    # take the next round's fault (a race CI met once: the malformed answer went to a cancelled request).
    fake.fail_next(3, 503, retry_after="2", match="listManagedInstances")
    unavailable_delay_s = await bed.discovery.round()
    fake.malformed_next(1, match="aggregated")
    malformed_delay_s = await bed.discovery.round()
    await bed.api.aclose()
    expired = Bed(fake, token="ya29.expired")
    expired.fleet.apply("gcp", [m for n in ["api-a", "api-b"] if (m := bed.fleet.member(n)) is not None])
    refused_delay_s = await expired.discovery.round()
    await expired.api.aclose()

    assert set(bed.inventory) == {"api-a", "api-b"}, "no failed round emptied or shrank the inventory"
    assert set(expired.inventory) == {"api-a", "api-b"}
    assert unavailable_delay_s >= 2.0, "the next round honours Retry-After"
    assert malformed_delay_s < 30.0 and refused_delay_s < 30.0, "a failed round is retried sooner than the interval"
    assert bed.metric("drainctl_discovery_last_success_timestamp_seconds") == succeeded_at
    assert any(r.status == 401 for r in fake.requests)


@async_test
async def test_an_instance_that_leaves_is_dropped_only_once_its_drain_ended(fake: Handle[FakeCompute]) -> None:
    bed = Bed(fake)
    await bed.discovery.round()
    draining = {"api-b"}
    bed.fleet.busy = lambda name: name in draining
    fake.remove("api-a")
    fake.remove("api-b")
    await bed.discovery.round()
    kept = set(bed.inventory)
    draining.clear()
    await bed.discovery.round()
    await bed.api.aclose()

    assert kept == {"api-b"}, "api-a left at once; api-b stayed while its drain was open"
    assert set(bed.inventory) == set()
    assert bed.metric("drainctl_discovery_instances") == 0
