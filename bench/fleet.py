"""The controller at fleet scale: 10,000 instances, one `drainctl run`, agents that push their notices.

    .venv/bin/python -m bench fleet [--instances 10000] [--ports 4] [--rest 30] [--samples 50] [--storm 1000]

Fake agents (wire-level: the agent API's paths and bodies, controller/protocol/agent.py) are served from a few
aiohttp ports in this process, one path prefix per instance (`http://127.0.0.1:PORT/a/NAME`); every count is
0, so a drain verifies at once. They push notices with the real agent's `Pusher` (controller/agent/pushing.py).
The instances are listed through the static `instances:` config across 3 regions' pools (discovery is another
branch's work: the integrator wires the fake Compute and ARM listings in later). Measures, on the controller
process: time from start to its ready line, RSS, CPU at rest over `--rest` seconds (the backstop poll of every
agent included), the backstop round (first to last agent read of one round, as the agents saw it), pushed
notice to drain request (p50/p99, one at a time, clock in this process), and a storm of `--storm` notices
pushed at once (all released, none past its deadline, drains started earliest deadline first per pool).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
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

REGIONS = ("us-central1", "europe-west1", "asia-east1")
TOKEN, PUSH, API = "bench-agent-token", "bench-push-token", "bench-api-token"


@dataclass
class Agents:
    """Every fake agent's notices, and when each was read, drained and released (monotonic seconds)."""

    notices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    reads: list[float] = field(default_factory=list)
    drains: dict[str, float] = field(default_factory=dict)
    releases: dict[str, float] = field(default_factory=dict)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at every drain request."""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/a/{name}/v1/notices", self._list)
        app.router.add_post("/a/{name}/v1/drain", self._drain)
        app.router.add_get("/a/{name}/v1/connections", self._count)
        app.router.add_post("/a/{name}/v1/notices/{id}/release", self._release)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        self.reads.append(time.monotonic())
        return web.json_response({"notices": list(self.notices[request.match_info["name"]].values())})

    async def _drain(self, request: web.Request) -> web.Response:
        self.drains.setdefault(request.match_info["name"], time.monotonic())
        self.drained.set()
        return web.json_response({"accepted": True, "app": {}}, status=202)

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response({"port": 443, "established": 0})

    async def _release(self, request: web.Request) -> web.Response:
        notice = self.notices[request.match_info["name"]].get(request.match_info["id"])
        if notice is None:
            return web.json_response({"error": "unknown notice"}, status=404)
        notice["state"] = "released"
        self.releases.setdefault(request.match_info["name"], time.monotonic())
        return web.json_response(notice)


def _config(workdir: Path, urls: dict[str, str], api_port: int) -> Path:
    token = workdir / "agent.token"
    for path, text in ((token, TOKEN), (workdir / "push.token", PUSH), (workdir / "api.token", API)):
        path.write_text(text)
    instances = {name: {"pool": name.rsplit("-vm-", 1)[0], "agent_url": url, "agent_token_file": str(token)}
                 for name, url in urls.items()}
    config = {
        "journal": str(workdir / "journal.sqlite"),
        "budget": {"drain_deadline_s": 30, "verify_s": 10, "margin_s": 10, "platform_notice_s": 600},
        "disruption": {"pools": {region: {"max_draining_percent": 10} for region in REGIONS}},
        "instances": instances,
        "agents": {"timeout_s": 5, "max_in_flight": 64},
        "api": {"listen": f"127.0.0.1:{api_port}", "token_file": str(workdir / "api.token"),
                "push_token_file": str(workdir / "push.token")},
        "sources": {"local": {"poll_interval_s": 30, "max_in_flight": 16}, "manual": {"enabled": True}},
        "engine": {"poll_interval_s": 0.5},
    }
    path = workdir / "controller.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def _serve(agents: Agents, ports: int) -> tuple[list[web.AppRunner], list[str]]:
    runners, bases = [], []
    for _ in range(ports):
        runner = web.AppRunner(agents.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        bases.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
    return runners, bases


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start(config: Path) -> tuple[asyncio.subprocess.Process, float, str]:
    started = time.monotonic()
    with (config.parent / "controller.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "drainctl"), "run", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=300)
    ready = json.loads(line)
    return process, time.monotonic() - started, f"http://{ready['api']}"


def _push(agents: Agents, pusher: Pusher, name: str, notice_id: str, not_after: float) -> Any:
    wall_not_after = time.time() + not_after
    wire = {"id": notice_id, "kind": "terminate", "not_after": wall_not_after, "state": "open"}
    agents.notices[name][notice_id] = wire
    notice = Notice(id=notice_id, kind="terminate", not_after=wall_not_after, seen_at=time.time())
    return pusher.push(notice)


_TRANSPORT: list[httpx.AsyncHTTPTransport] = []


def _pusher(api: str, name: str, base: str) -> Pusher:
    """A real agent's pusher; all share one transport (a client each would load the CA bundle 1,000 times in
    this process, which also serves the fake agents, and starve them)."""
    if not _TRANSPORT:
        _TRANSPORT.append(httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200)))
    return Pusher([api], PUSH, instance=name, agent_url=base, clock=SystemClock(), timeout_s=10,
                  transport=_TRANSPORT[0])


async def _latency(agents: Agents, api: str, names: list[str], urls: dict[str, str]) -> dict[str, float]:
    samples = []
    for name in names:
        pusher = _pusher(api, name, urls[name])
        started = time.monotonic()
        await _push(agents, pusher, name, f"lat-{name}", 600)
        while name not in agents.drains:
            agents.drained.clear()
            await agents.drained.wait()
        samples.append((agents.drains[name] - started) * 1000)
    return {"samples": len(samples), "p50_ms": round(nearest_rank(samples, 50) or 0, 1),
            "p99_ms": round(nearest_rank(samples, 99) or 0, 1), "max_ms": round(max(samples), 1)}


async def _storm(agents: Agents, api: str, names: list[str], urls: dict[str, str]) -> dict[str, Any]:
    deadlines = {name: random.uniform(120, 300) for name in names}
    pushers = {name: _pusher(api, name, urls[name]) for name in names}
    started = time.monotonic()
    await asyncio.gather(*(_push(agents, pushers[n], n, f"storm-{n}", deadlines[n]) for n in names))
    pushed_s = time.monotonic() - started
    while not all(name in agents.releases for name in names):
        if time.monotonic() - started > 330:
            break
        await asyncio.sleep(0.2)
    late = [n for n in names if n not in agents.releases or agents.releases[n] - started > deadlines[n]]
    return {"notices": len(names), "all_pushed_s": round(pushed_s, 2),
            "all_released_s": round(max(agents.releases.get(n, float("inf")) for n in names) - started, 1),
            "released": sum(1 for n in names if n in agents.releases), "past_deadline": len(late),
            "edf_inversions": _inversions(agents, names, deadlines, started + pushed_s)}


def _inversions(agents: Agents, names: list[str], deadlines: dict[str, float], all_in: float) -> int:
    """Drains started after every push was in whose deadline was earlier than the drain started before them."""
    count = 0
    for region in REGIONS:
        order = sorted((agents.drains[n], deadlines[n]) for n in names
                       if n.startswith(region) and agents.drains.get(n, 0) > all_in)
        count += sum(1 for (_, a), (_, b) in itertools.pairwise(order) if b < a - 1e-9)
    return count


async def _run(instances: int, ports: int, rest_s: float, samples: int, storm: int) -> dict[str, Any]:
    agents = Agents()
    runners, bases = await _serve(agents, ports)
    names = [f"{REGIONS[i % 3]}-vm-{i:05d}" for i in range(instances)]
    urls = {name: f"{bases[i % ports]}/a/{name}" for i, name in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        config = _config(Path(tmp), urls, _free_port())
        process, ready_s, api = await _start(config)
        try:
            at_ready = len(agents.reads)
            usage = (await asyncio.to_thread(measure, [process.pid], rest_s))[0]
            first_round = agents.reads[at_ready:at_ready + instances]
            round_s = first_round[-1] - first_round[0] if len(first_round) == instances else None
            latency = await _latency(agents, api, random.sample(names, samples), urls)
            rest = [n for n in names if n not in agents.drains]
            storm_result = await _storm(agents, api, random.sample(rest, min(storm, len(rest))), urls)
            rss_mib = measure([process.pid], 0.0)[0].rss_mib
        finally:
            process.terminate()
            await process.wait()
            for runner in runners:
                await runner.cleanup()
    return {
        "instances": instances, "agent_ports": ports, "ready_s": round(ready_s, 2),
        "rss_mib_at_rest": round(usage.rss_mib), "rss_mib_after_storm": round(rss_mib),
        "cpu_percent_of_core_at_rest": round(usage.cpu_percent, 1), "rest_window_s": rest_s,
        "backstop_round_s": None if round_s is None else round(round_s, 1), "backstop_interval_s": 30,
        "push_to_drain_request": latency, "storm": storm_result,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run(instances: int = 10_000, ports: int = 4, rest_s: float = 30.0, samples: int = 50,
        storm: int = 1000) -> dict[str, Any]:
    return asyncio.run(_run(instances, ports, rest_s, samples, storm))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=4, help="aiohttp ports serving the fake agents")
    parser.add_argument("--rest", type=float, default=30.0, help="seconds of CPU sampling at rest")
    parser.add_argument("--samples", type=int, default=50, help="pushed notices timed one at a time")
    parser.add_argument("--storm", type=int, default=1000, help="notices pushed at once")
    args = parser.parse_args(argv)
    print(json.dumps({"fleet": run(args.instances, args.ports, args.rest, args.samples, args.storm)}), flush=True)


if __name__ == "__main__":
    main()
