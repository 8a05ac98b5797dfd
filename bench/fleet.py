"""The controller at fleet scale: 10,000 instances it discovers itself, one `drainctl run`, agents that push.

    .venv/bin/python -m bench fleet [--instances 10000] [--rest 30] [--samples 50] [--storm 1000]
                                    [--backstop-rate 10] [--backstop-interval 1200] [--full-round]

The controller's config lists no instance: it discovers them through the wire-level fakes the e2e tests use
(tests/fakes), served from this process: the Compute API (`FakeCompute`: 3 regions' MIGs of `--instances`
x 3/4 instances, listManagedInstances and aggregated instances with each one's networkIP) and Resource Manager
(`FakeArm`: 2 scale sets with the rest, their VMs and NICs' private addresses). Every instance's address is
its own loopback address (127.1.x.y) on the fleet's one agent port, as on a VPC; the fake agents (the agent
API's paths and bodies, controller/protocol/agent.py, every count 0 so a drain verifies at once) listen on
that port of every address and tell the instances apart by the address a request came to. They push notices
with the real agent's `Pusher` (controller/agent/pushing.py).

Measures, on the controller process (`bench/procstat.py`): time from start to its ready line and to a full
inventory (every discovery answered); the discovery round (`drainctl_discovery_round_duration_seconds`); RSS;
CPU at rest over `--rest` seconds (the backstop's paced reads, the MIG poller and discovery rounds included);
the backstop's pace as the agents saw it and the round that pace makes (measured whole with `--full-round`);
pushed notice to drain request (p50/p99, one at a time, clock in this process); and a storm of `--storm`
notices pushed at once: how long until every push was answered 202, all released, none past its deadline, at
most the disruption budget draining per pool at once, drain requests in deadline order (from the journal).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import re
import socket
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bench.procstat import measure
from controller.agent.notices import Notice
from controller.agent.pushing import Pusher
from controller.core.clocks import SystemClock
from testbed.swarm.reporting import nearest_rank
from tests.fakes.azure_arm import FakeArm, Vm
from tests.fakes.gce_compute import ZONE_SUFFIXES, FakeCompute, ManagedInstance

REGIONS = ("us-central1", "europe-west1", "asia-east1")
SCALE_SETS = ("api-centralus", "api-westeurope")
PROJECT, SUB, GROUP = "bench-proj", "0000-bench", "drainctl-bench"
TOKEN, PUSH, API = "bench-agent-token", "bench-push-token", "bench-api-token"
DRAINING_PERCENT = 2
"""Each pool's disruption budget: small enough that a storm of 1,000 queues (about 200 per pool of 2,000-2,500,
50 slots), so the order of admission shows."""


@dataclass(frozen=True)
class Host:
    name: str
    pool: str
    address: str


def fleet_hosts(instances: int) -> list[Host]:
    """3/4 in the 3 MIGs, the rest in the 2 scale sets; each on its own loopback address."""
    hosts = []
    gcp = instances * 3 // 4
    for i in range(instances):
        address = f"127.1.{i // 250}.{i % 250 + 1}"
        if i < gcp:
            pool = f"api-{REGIONS[i % 3]}"
            hosts.append(Host(f"{pool}-{i:05d}", pool, address))
        else:
            pool = SCALE_SETS[i % 2]
            hosts.append(Host(f"{pool}_{i}", pool, address))
    return hosts


def compute_fake(hosts: list[Host]) -> FakeCompute:
    fake = FakeCompute(project=PROJECT)
    for region in REGIONS:
        fake.groups[(region, f"api-{region}")] = []
    for i, host in enumerate(h for h in hosts if "_" not in h.name):
        region = host.pool.removeprefix("api-")
        zone = f"{region}-{ZONE_SUFFIXES[i % 3]}"
        fake.groups[(region, host.pool)].append(ManagedInstance(host.name, zone, str(10**15 + i),
                                                                network_ip=host.address))
    return fake


def arm_fake(hosts: list[Host]) -> FakeArm:
    fake = FakeArm(page_size=500)
    for name in SCALE_SETS:
        fake.scale_sets[(SUB, GROUP, name)] = []
    for host in hosts:
        if "_" in host.name:
            scale_set, instance_id = host.name.split("_")
            fake.scale_sets[(SUB, GROUP, scale_set)].append(Vm(instance_id, host.address))
    return fake


@dataclass
class Agents:
    """Every fake agent's notices, and when each was read, drained and released (monotonic seconds)."""

    by_address: dict[str, str]
    notices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    reads: list[tuple[float, str]] = field(default_factory=list)
    drains: dict[str, float] = field(default_factory=dict)
    releases: dict[str, float] = field(default_factory=dict)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at every drain request."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/notices", self._list)
        app.router.add_post("/v1/drain", self._drain)
        app.router.add_get("/v1/connections", self._count)
        app.router.add_post("/v1/notices/{id}/release", self._release)
        return app

    def _name(self, request: web.Request) -> str:
        sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
        name = self.by_address.get(str(sockname[0])) if sockname else None
        if name is None:
            raise web.HTTPNotFound(text='{"error": "no agent at this address"}')
        return name

    async def _list(self, request: web.Request) -> web.Response:
        name = self._name(request)
        self.reads.append((time.monotonic(), name))
        return web.json_response({"notices": list(self.notices[name].values())})

    async def _drain(self, request: web.Request) -> web.Response:
        self.drains.setdefault(self._name(request), time.monotonic())
        self.drained.set()
        return web.json_response({"accepted": True, "app": {}}, status=202)

    async def _count(self, request: web.Request) -> web.Response:
        self._name(request)
        return web.json_response({"port": 443, "established": 0})

    async def _release(self, request: web.Request) -> web.Response:
        name = self._name(request)
        notice = self.notices[name].get(request.match_info["id"])
        if notice is None:
            return web.json_response({"error": "unknown notice"}, status=404)
        notice["state"] = "released"
        self.releases.setdefault(name, time.monotonic())
        return web.json_response(notice)


def _config(workdir: Path, urls: dict[str, str], api_port: int, agent_port: int, backstop: Backstop) -> Path:
    token = workdir / "agent.token"
    for path, text in ((token, TOKEN), (workdir / "push.token", PUSH), (workdir / "api.token", API)):
        path.write_text(text)
    discovery = {"enabled": True, "interval_s": 30, "agent_port": agent_port, "agent_token_file": str(token)}
    pools = [f"api-{region}" for region in REGIONS] + list(SCALE_SETS)
    config = {
        "journal": str(workdir / "journal.sqlite"),
        "budget": {"drain_deadline_s": 30, "verify_s": 10, "margin_s": 10, "platform_notice_s": 600},
        "disruption": {"pools": {pool: {"max_draining_percent": DRAINING_PERCENT} for pool in pools}},
        "agents": {"timeout_s": 5, "max_in_flight": 64, "token_file": str(token)},
        "api": {"listen": f"127.0.0.1:{api_port}", "token_file": str(workdir / "api.token"),
                "push_token_file": str(workdir / "push.token")},
        "sources": {
            "local": {"poll_interval_s": backstop.interval_s, "rate_per_s": backstop.rate_per_s,
                      "max_in_flight": 16},
            "manual": {"enabled": True},
            "gcp": {"enabled": True, "project": PROJECT, "api_url": urls["gcp"], "auth": "anonymous",
                    "groups": [{"region": region, "name": f"api-{region}"} for region in REGIONS],
                    "discovery": discovery},
            "azure": {"enabled": True, "arm_url": urls["azure"], "auth": "anonymous",
                      "scale_sets": [{"subscription": SUB, "resource_group": GROUP, "name": name}
                                     for name in SCALE_SETS],
                      "interval_s": 30, "agent_port": agent_port, "agent_token_file": str(token)},
        },
        "engine": {"poll_interval_s": 0.5},
    }
    path = workdir / "controller.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@dataclass(frozen=True)
class Backstop:
    rate_per_s: float
    interval_s: float


async def _site(app: web.Application, host: str, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, int(runner.addresses[0][1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start(config: Path, profile: Path | None) -> tuple[asyncio.subprocess.Process, float, float, str]:
    """The controller (under cProfile, written at its exit, with `profile`), the start's monotonic time, and
    its ready line's time."""
    started = time.monotonic()
    drainctl = str(Path(sys.executable).parent / "drainctl")
    wrap = [] if profile is None else [sys.executable, "-m", "cProfile", "-o", str(profile)]
    with (config.parent / "controller.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *wrap, drainctl, "run", "--config", str(config), stdout=asyncio.subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    ready = json.loads(line)
    return process, started, time.monotonic() - started, f"http://{ready['api']}"


async def _metrics(api: str) -> dict[str, float]:
    """The controller's discovery gauges, by `name{platform}`."""
    async with httpx.AsyncClient(timeout=30) as client:
        text = (await client.get(f"{api}/metrics", headers={"Authorization": f"Bearer {API}"})).text
    found = {}
    for match in re.finditer(r'^(drainctl_discovery_\w+)\{platform="(\w+)"\} (\S+)$', text, re.M):
        found[f"{match[1]}{{{match[2]}}}"] = float(match[3])
    return found


async def _inventory_full(api: str, instances: int, started: float) -> tuple[float, dict[str, float]]:
    """Seconds from the start until every platform's discovery holds all its instances; the gauges then."""
    while True:
        gauges = await _metrics(api)
        held = sum(v for k, v in gauges.items() if k.startswith("drainctl_discovery_instances{"))
        if held >= instances:
            return time.monotonic() - started, gauges
        if time.monotonic() - started > 120:
            raise RuntimeError(f"discovery holds {held:.0f} of {instances} after 120 s")
        await asyncio.sleep(0.1)


def _push(agents: Agents, pusher: Pusher, name: str, notice_id: str, not_after: float) -> Any:
    wall_not_after = time.time() + not_after
    wire = {"id": notice_id, "kind": "terminate", "not_after": wall_not_after, "state": "open"}
    agents.notices[name][notice_id] = wire
    notice = Notice(id=notice_id, kind="terminate", not_after=wall_not_after, seen_at=time.time())
    return pusher.push(notice)


def _pusher(api: str, host: Host, agent_port: int) -> Pusher:
    """A real agent's pusher, with a connection pool of its own as each agent has (one pool shared by 1,000
    pushers made this process the bottleneck: httpcore's pool is quadratic in its connections). Plain HTTP, so
    no CA bundle is loaded (`verify=False`): a thousand of them are cheap to make."""
    return Pusher([api], PUSH, instance=host.name, agent_url=f"http://{host.address}:{agent_port}",
                  clock=SystemClock(), timeout_s=10, transport=httpx.AsyncHTTPTransport(verify=False))


async def _latency(agents: Agents, api: str, hosts: list[Host], agent_port: int) -> dict[str, float]:
    samples = []
    for host in hosts:
        pusher = _pusher(api, host, agent_port)
        started = time.monotonic()
        await _push(agents, pusher, host.name, f"lat-{host.name}", 600)
        while host.name not in agents.drains:
            agents.drained.clear()
            await agents.drained.wait()
        samples.append((agents.drains[host.name] - started) * 1000)
    return {"samples": len(samples), "p50_ms": round(nearest_rank(samples, 50) or 0, 1),
            "p99_ms": round(nearest_rank(samples, 99) or 0, 1), "max_ms": round(max(samples), 1)}


async def _storm(agents: Agents, api: str, hosts: list[Host], agent_port: int, journal: Path,
                 slots: dict[str, int]) -> dict[str, Any]:
    deadlines = {host.name: random.uniform(120, 300) for host in hosts}
    pushers = {host.name: _pusher(api, host, agent_port) for host in hosts}
    wall_started, started = time.time(), time.monotonic()
    answered: list[float] = []

    async def one(host: Host) -> None:
        await _push(agents, pushers[host.name], host.name, f"storm-{host.name}", deadlines[host.name])
        answered.append(time.monotonic() - started)

    await asyncio.gather(*(one(host) for host in hosts))
    pushed_s = time.monotonic() - started
    names = [host.name for host in hosts]
    while not all(name in agents.releases for name in names):
        if time.monotonic() - started > 330:
            break
        await asyncio.sleep(0.2)
    late = [n for n in names if n not in agents.releases or agents.releases[n] - started > deadlines[n]]
    order = _journal_order(journal, set(names))
    return {"notices": len(names), "all_pushed_s": round(pushed_s, 3),
            "push_answered_p50_s": round(nearest_rank(answered, 50) or 0, 3),
            "all_released_s": round(max(agents.releases.get(n, float("inf")) for n in names) - started, 1),
            "released": sum(1 for n in names if n in agents.releases), "past_deadline": len(late),
            "edf_inversions": _inversions(order, wall_started + pushed_s),
            "over_budget_pools": _over_budget(order, slots), "slots_per_pool": slots}


@dataclass(frozen=True)
class Started:
    pool: str
    not_after: float
    requested_at: float
    settled_at: float
    """When the episode left the draining phases (drained, failed...): its disruption slot freed."""


def _journal_order(journal: Path, names: set[str]) -> list[Started]:
    """Every drain of `names` the journal has, with when it was requested and when its slot freed."""
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT d.instance, d.pool, d.not_after, d.drain_requested_at, "
            "(SELECT MIN(t.at) FROM transitions t WHERE t.drain_id = d.id AND t.phase IN "
            "('drained', 'failed', 'cancelled', 'released')) FROM drains d "
            "WHERE d.drain_requested_at IS NOT NULL").fetchall()
    return [Started(pool, not_after, requested, settled if settled is not None else float("inf"))
            for instance, pool, not_after, requested, settled in rows if instance in names]


def _inversions(order: list[Started], all_in: float) -> int:
    """Drains requested (in the journal's order) after every push was in whose deadline is earlier than that
    of the drain requested just before them, in the same pool."""
    count = 0
    for pool in {s.pool for s in order}:
        started = sorted((s.requested_at, s.not_after) for s in order if s.pool == pool and s.requested_at > all_in)
        count += sum(1 for (_, a), (_, b) in itertools.pairwise(started) if b < a - 1e-9)
    return count


def _over_budget(order: list[Started], slots: dict[str, int]) -> dict[str, int]:
    """Pools that ever had more drains between request and settling than their slots: the most they had."""
    over = {}
    for pool in {s.pool for s in order}:
        edges = sorted([(s.requested_at, 1) for s in order if s.pool == pool]
                       + [(s.settled_at, -1) for s in order if s.pool == pool])
        now = most = 0
        for _, step in edges:  # at a tie, -1 sorts first: a slot freed and taken at the same instant
            now += step
            most = max(most, now)
        if most > slots[pool]:
            over[pool] = most
    return over


def _slots(hosts: list[Host]) -> dict[str, int]:
    """Each pool's disruption slots, as the controller computes them (controller/config.py, PoolBudget)."""
    sizes: dict[str, int] = defaultdict(int)
    for host in hosts:
        sizes[host.pool] += 1
    return {pool: max(1, size * DRAINING_PERCENT // 100) for pool, size in sizes.items()}


def _backstop(agents: Agents, since: float, instances: int) -> dict[str, Any]:
    reads = [at for at, _ in agents.reads if at >= since]
    window_s = (reads[-1] - reads[0]) if len(reads) > 1 else 0.0
    rate = (len(reads) - 1) / window_s if window_s > 0 else 0.0
    return {"reads_in_rest_window": len(reads), "reads_per_s": round(rate, 1),
            "round_s_at_this_pace": round(instances / rate, 1) if rate else None}


async def _full_round(agents: Agents, instances: int, timeout_s: float) -> float | None:
    """Seconds from a read to the read that completes a pass over every agent (None: not within the timeout)."""
    started, first = time.monotonic(), len(agents.reads)
    while time.monotonic() - started < timeout_s:
        if len({name for _, name in agents.reads[first:]}) >= instances:
            return agents.reads[-1][0] - agents.reads[first][0]
        await asyncio.sleep(1.0)
    return None


async def _run(instances: int, rest_s: float, samples: int, storm: int, backstop: Backstop,
               full_round: bool, profile: Path | None = None) -> dict[str, Any]:
    hosts = fleet_hosts(instances)
    agents = Agents({host.address: host.name for host in hosts})
    agent_port = _free_port()
    agent_runner, _ = await _site(agents.app(), "0.0.0.0", agent_port)  # every 127.1.x.y: see the docstring
    compute_runner, compute_port = await _site(compute_fake(hosts).app(), "127.0.0.1")
    arm_runner, arm_port = await _site(arm_fake(hosts).app(), "127.0.0.1")
    urls = {"gcp": f"http://127.0.0.1:{compute_port}", "azure": f"http://127.0.0.1:{arm_port}"}
    result: dict[str, Any] = {"instances": instances}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        config = _config(Path(tmp), urls, _free_port(), agent_port, backstop)
        process, started, ready_s, api = await _start(config, profile)
        try:
            full_s, gauges = await _inventory_full(api, instances, started)
            result.update(ready_s=round(ready_s, 2), inventory_full_s=round(full_s, 2),
                          discovery_round_s={k.split("{")[1].rstrip("}"): round(v, 2) for k, v in gauges.items()
                                             if k.startswith("drainctl_discovery_round_duration_seconds")})
            rest_from = time.monotonic()
            usage = (await asyncio.to_thread(measure, [process.pid], rest_s))[0]
            result.update(rss_mib_at_rest=round(usage.rss_mib), cpu_percent_of_core_at_rest=round(usage.cpu_percent, 1),
                          rest_window_s=rest_s, backstop=_backstop(agents, rest_from, instances))
            if full_round:
                result["backstop"]["full_round_s"] = await _full_round(agents, instances, 3 * backstop.interval_s)
            gauges = await _metrics(api)
            result["discovery_round_s_later"] = {k.split("{")[1].rstrip("}"): round(v, 2) for k, v in gauges.items()
                                                 if k.startswith("drainctl_discovery_round_duration_seconds")}
            result["push_to_drain_request"] = await _latency(agents, api, random.sample(hosts, samples), agent_port)
            rest = [h for h in hosts if h.name not in agents.drains]
            result["storm"] = await _storm(agents, api, random.sample(rest, min(storm, len(rest))), agent_port,
                                           Path(tmp) / "journal.sqlite", _slots(hosts))
            result["rss_mib_after_storm"] = round(measure([process.pid], 0.0)[0].rss_mib)
        except Exception:
            sys.stderr.write((Path(tmp) / "controller.log").read_text()[-5000:])
            raise
        finally:
            process.terminate()
            await process.wait()
            for runner in (agent_runner, compute_runner, arm_runner):
                await runner.cleanup()
    result.update(backstop_rate_per_s=backstop.rate_per_s, backstop_interval_s=backstop.interval_s,
                  machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                  load_average_1m=round(os.getloadavg()[0], 2))
    return result


def run(instances: int = 10_000, rest_s: float = 30.0, samples: int = 50, storm: int = 1000,
        backstop_rate: float = 10.0, backstop_interval: float = 1200.0, full_round: bool = False,
        profile: Path | None = None) -> dict[str, Any]:
    return asyncio.run(_run(instances, rest_s, samples, storm, Backstop(backstop_rate, backstop_interval),
                            full_round, profile))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--rest", type=float, default=30.0, help="seconds of CPU sampling at rest")
    parser.add_argument("--samples", type=int, default=50, help="pushed notices timed one at a time")
    parser.add_argument("--storm", type=int, default=1000, help="notices pushed at once")
    parser.add_argument("--backstop-rate", type=float, default=10.0, help="sources.local.rate_per_s")
    parser.add_argument("--backstop-interval", type=float, default=1200.0, help="sources.local.poll_interval_s")
    parser.add_argument("--full-round", action="store_true", help="also wait for one whole backstop round")
    parser.add_argument("--profile", type=Path, help="run the controller under cProfile, its stats to this file")
    args = parser.parse_args(argv)
    result = run(args.instances, args.rest, args.samples, args.storm, args.backstop_rate, args.backstop_interval,
                 args.full_round, args.profile)
    print(json.dumps({"fleet": result}), flush=True)


if __name__ == "__main__":
    main()
