"""The fleet is the one map of agents: pushed, discovered and watched members are one entry per instance, each
reports its agent's reachability, and each leaves once gone and idle (issue 11: discovery build items 1, 3, 4).

The agents are real sockets on loopback: a real node agent's routes (in process) for one that answers, a port
nobody listens on for one that does not."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from controller.agent.routes import build_app
from controller.core.announcements import Journaled
from controller.core.errors import TemporaryError
from controller.core.inventory import Inventory
from controller.core.members import Member
from controller.core.models import Drain, EventKind, Phase, Transition
from controller.core.ports import UnknownHost
from controller.hosts.client import AgentClient, AgentUnreachable
from controller.hosts.fleet import Fleet, NotListedYet
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability
from tests.controller.agent.test_fallback_timing import host
from tests.support.tasks import async_test

TOKEN = "fleet-agent-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def live_agent() -> AsyncIterator[str]:
    """A real node agent's routes on loopback; its base URL."""
    server = TestServer(build_app(host(0).agent, TOKEN))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


class Bed:
    def __init__(self, *, ttl_s: float = 60.0) -> None:
        self.registry = CollectorRegistry()
        self.clock = Clock()
        self.pool = AgentPool()
        self.inventory = Inventory()
        self.fleet = Fleet(self.inventory, {}, timeout_s=2.0, registry=self.registry, clock=self.clock,
                           pool=self.pool, reachability=AgentReachability(self.registry), token=TOKEN,
                           learned_ttl_s=ttl_s)

    def up(self, name: str) -> float | None:
        return self.registry.get_sample_value("drainctl_agent_up", {"host": name})

    async def aclose(self) -> None:
        await self.fleet.aclose()
        await self.pool.aclose()


def finished(instance: str) -> Journaled:
    """The journal line that ends `instance`'s drain (released)."""
    drain = Drain(1, instance, "web", "local", EventKind.TERMINATE, "e1", 2e9, 10.0, 30.0, True,
                  phase=Phase.RELEASED)
    line = Transition(9, 1, instance, 1_000.0, Phase.DRAINED, Phase.RELEASED, "released")
    return Journaled(line, None, drain)


@async_test
async def test_a_pushed_then_discovered_instance_is_one_agent_not_two() -> None:
    bed = Bed()
    async with live_agent() as url:
        assert bed.fleet.learn("api-9", url, "web") is True
        pushed = bed.fleet["api-9"]
        bed.fleet.apply("gcp", [Member("api-9", "api", url, TOKEN, "gcp", {"zone": "us-central1-a"})])
        discovered = bed.fleet["api-9"]
        notices = await discovered.notices()
        again = bed.fleet.learn("api-9", "http://10.6.6.6:9100", "web")
        bed.fleet.apply("gcp", [])
    await bed.aclose()

    assert discovered is pushed, "the discovery took over the pushed member's agent: one client, not two"
    assert notices == [] and again is False, "a later push changes nothing"
    assert list(bed.fleet) == [] and "api-9" not in bed.inventory, "gcp's next round without it dropped it"
    member_platforms = bed.registry.get_sample_value("drainctl_discovery_instances", {"platform": "push"})
    assert member_platforms == 0, "it was counted once, as pushed, then as discovered"


@async_test
async def test_a_pushed_instance_whose_agent_stays_silent_leaves_once_its_drain_ended() -> None:
    bed = Bed(ttl_s=60.0)
    bed.fleet.learn("gone-vm", f"http://127.0.0.1:{closed_port()}", "web")
    draining = {"gone-vm"}
    bed.fleet.busy = lambda name: name in draining
    agent = bed.fleet["gone-vm"]
    for advance_s in (0.0, 30.0, 31.0):  # the backstop poll asking it, round after round
        bed.clock.now += advance_s
        with pytest.raises(AgentUnreachable):
            await agent.notices()
    kept = list(bed.fleet)
    bed.fleet.hear(finished("gone-vm"))
    await bed.aclose()

    assert kept == ["gone-vm"], "silent for 61 s but its drain is open: kept"
    assert list(bed.fleet) == [] and "gone-vm" not in bed.inventory, "its drain ended: it left"
    assert bed.up("gone-vm") is None, "its drainctl_agent_up series left with it"


@async_test
async def test_a_pushed_instance_that_answers_again_is_kept_and_one_that_is_idle_leaves_at_once() -> None:
    bed = Bed(ttl_s=60.0)
    async with live_agent() as url:
        bed.fleet.learn("live-vm", url, "web")
        await bed.fleet["live-vm"].notices()
        bed.clock.now += 3_600.0
        await bed.fleet["live-vm"].notices()
    bed.fleet.learn("dead-vm", f"http://127.0.0.1:{closed_port()}", "web")
    for advance_s in (0.0, 61.0):
        bed.clock.now += advance_s
        with pytest.raises(AgentUnreachable):
            await bed.fleet["dead-vm"].notices()
    await bed.aclose()

    assert "live-vm" in bed.inventory and bed.up("live-vm") == 1.0
    assert "dead-vm" not in bed.inventory, "silent past learned_ttl_s with no drain open: gone"


@async_test
async def test_every_member_reports_its_agents_reachability_and_a_dropped_one_leaves_no_series() -> None:
    bed = Bed()
    async with live_agent() as url:
        dead = f"http://127.0.0.1:{closed_port()}"
        bed.fleet.apply("gcp", [Member("vm-up", "api", url, TOKEN, "gcp"), Member("vm-down", "api", dead, TOKEN,
                                                                                  "gcp")])
        bed.fleet.put(Member("pod-a", "k8s", url, TOKEN, "kubernetes"))
        await bed.fleet["vm-up"].connections()
        await bed.fleet["pod-a"].notices()
        with pytest.raises(AgentUnreachable):
            await bed.fleet["vm-down"].connections()
        seen = {name: bed.up(name) for name in ("vm-up", "vm-down", "pod-a")}
        bed.fleet.drop("kubernetes", "pod-a")
    await bed.aclose()

    assert seen == {"vm-up": 1.0, "vm-down": 0.0, "pod-a": 1.0}
    assert bed.up("pod-a") is None and "pod-a" not in bed.inventory


@async_test
async def test_a_watched_member_gone_mid_drain_stays_until_the_drain_is_journaled_finished() -> None:
    bed = Bed()
    bed.fleet.busy = lambda name: name == "pod-b"
    bed.fleet.put(Member("pod-a", "k8s", "http://10.1.0.2:9100", TOKEN, "kubernetes"))
    bed.fleet.put(Member("pod-b", "k8s", "http://10.1.0.3:9100", TOKEN, "kubernetes"))
    bed.fleet.drop("kubernetes", "pod-a")
    bed.fleet.drop("kubernetes", "pod-b")
    kept = dict(bed.inventory)
    client = bed.fleet.host("pod-b")
    bed.fleet.hear(finished("pod-b"))
    await bed.aclose()

    assert kept == {"pod-b": "k8s"}, "pod-a left at once; pod-b stayed for its drain"
    assert client.base_url == "http://10.1.0.3:9100", "the draining pod's agent is still reachable"
    assert dict(bed.inventory) == {}


@async_test
async def test_before_a_platforms_first_listing_an_unknown_instance_is_temporary_and_then_unknown() -> None:
    bed = Bed()
    bed.fleet.expect("kubernetes")
    with pytest.raises(NotListedYet) as waiting:
        bed.fleet.host("pod-x")
    bed.fleet.listed("kubernetes")
    with pytest.raises(UnknownHost):
        bed.fleet.host("pod-x")
    await bed.aclose()

    assert isinstance(waiting.value, TemporaryError), "the engine retries it instead of failing the drain"


@async_test
async def test_a_static_instance_wins_over_a_platforms_and_a_pushs() -> None:
    static_pool = AgentPool()
    static = {"vm-1": AgentClient("http://10.0.0.1:9100", TOKEN, pool=static_pool)}
    inventory = Inventory({"vm-1": "static"})
    fleet = Fleet(inventory, static, timeout_s=1.0, token=TOKEN)
    fleet.put(Member("vm-1", "k8s", "http://10.9.9.9:9100", TOKEN, "kubernetes"))
    learned = fleet.learn("vm-1", "http://10.6.6.6:9100", "web")
    await fleet.aclose()
    await static_pool.aclose()

    assert fleet.host("vm-1") is static["vm-1"] and learned is False
    assert dict(inventory) == {"vm-1": "static"} and len(fleet) == 1
