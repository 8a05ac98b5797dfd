"""The watched pods are members of the one fleet (issue 11, discovery item 1): a pod is in the inventory from
the watch event that shows it, with its agent at the pod IP; a pod gone is dropped (kept while a drain of it is
open); API server errors never empty the fleet. The real source against the wire-level fake API server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from controller.core.inventory import Inventory
from controller.hosts.fleet import Fleet
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.discovering import PodMembers
from tests.controller.platforms.kubernetes.support import watching
from tests.fakes.kubernetes import serve
from tests.support import until
from tests.support.tasks import async_test


def pod_fleet() -> tuple[Fleet, PodDirectory, CollectorRegistry]:
    registry = CollectorRegistry()
    fleet = Fleet(Inventory(), {}, timeout_s=1.0, registry=registry)
    pods = PodDirectory()
    PodMembers(pods, fleet, pool="api", agent_port=9100, token="pod-agent-token")
    return fleet, pods, registry


@async_test
async def test_a_pod_is_a_member_from_its_watch_event_and_leaves_when_deleted_unless_draining() -> None:
    fleet, pods, registry = pod_fleet()
    draining = {"b"}
    fleet.busy = lambda name: name in draining
    with serve() as fake:
        fake.add_pod("a", ip="10.4.0.2")
        async with watching(fake, pods) as seen:
            await until(lambda: "a" in fleet.inventory, what="the listed pod to join")
            fake.add_pod("b", ip="10.4.0.3")
            fake.add_pod("pending", ip=None, phase="Pending")
            await until(lambda: "b" in fleet.inventory, what="the pod created after the list to join")
            member = fleet.member("b")
            fake.delete_pod("a", grace_s=0)
            fake.delete_pod("b", grace_s=0)
            await until(lambda: seen.pods.get("a") is None and seen.pods.get("b") is None, what="both pods gone")
            kept = dict(fleet.inventory)
    await fleet.aclose()

    assert member is not None and (member.platform, member.pool, member.agent_url) == (
        "kubernetes", "api", "http://10.4.0.3:9100")
    assert member.handles["uid"] and member.handles["namespace"] == "default"
    assert kept == {"b": "api"}, "a left with its pod; b stays while its drain is open; a pod without IP is no member"
    assert registry.get_sample_value("drainctl_discovery_instances", {"platform": "kubernetes"}) == 1


@async_test
async def test_api_server_errors_never_empty_the_fleet_and_the_next_list_catches_up() -> None:
    fleet, pods, _registry = pod_fleet()
    with serve() as fake:
        fake.add_pod("a", ip="10.4.0.2")
        fake.add_pod("b", ip="10.4.0.3")
        async with watching(fake, pods) as seen:
            await until(lambda: set(fleet.inventory) == {"a", "b"}, what="the list")

            def outage(f: object) -> None:  # in one step: the watch expires, lists fail, b vanishes meanwhile
                f.fail_next(4, 503, match="pods")  # type: ignore[attr-defined]
                f.expire_watches("status")  # type: ignore[attr-defined]

            fake.call(outage)
            await until(lambda: seen.metric("drainctl_source_errors_total", kind="unavailable") >= 2,
                        what="the relists to fail")
            during = set(fleet.inventory)
            fake.delete_pod("b", grace_s=0)
            await until(lambda: set(fleet.inventory) == {"a"}, what="the relist after the outage")
    await fleet.aclose()

    assert during == {"a", "b"}, "failed lists changed nothing"
