"""The swarm's run: N clients in one asyncio process, each connecting, heartbeating and reconnecting.

Each client is one task looping connect+join -> hold -> back off -> connect again, until the run ends (duration
or SIGTERM/SIGINT). The runner then snapshots who is connected where, closes every socket, writes the report
atomically and prints JSON events for harnesses (`joined` once every client has joined, `report` at the end)
followed by a human summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import signal
import sys
import time
from typing import Any

from controller.core.errors import DrainctlError
from testbed.collecting import Collector
from testbed.swarm.backoff import Backoff
from testbed.swarm.connecting import (
    CLOSE_TIMEOUT_S,
    ConnectFailed,
    Joined,
    Rejected,
    Unauthorized,
    connect_and_join,
    socket_url,
)
from testbed.swarm.heartbeating import hold
from testbed.swarm.lagging import LoopLag
from testbed.swarm.options import SwarmOptions
from testbed.swarm.records import ClientState, Disconnect, Ending, SwarmState
from testbed.swarm.reporting import EndSnapshot, build_report, print_summary, snapshot, write_atomically

SHUTDOWN_GRACE_S = CLOSE_TIMEOUT_S + 3.0
"""How long the runner lets clients finish their closing handshakes before aborting what is left."""


def run(options: SwarmOptions) -> None:
    """Run the swarm for `options.duration_s` (or until SIGTERM/SIGINT), write the report, print a summary."""
    _raise_open_files_limit(options.count)
    report, crashed = asyncio.run(_run(options))
    write_atomically(options.report, report)
    emit({"event": "report", "path": str(options.report)})
    print_summary(report, sys.stdout)
    if crashed:
        raise DrainctlError(f"{len(crashed)} client(s) crashed; first: {crashed[0]}")


def emit(event: dict[str, Any]) -> None:
    """One JSON line on stdout for harnesses, flushed at once."""
    print(json.dumps(event), flush=True)


class Swarm:
    """The clients and what they record; one `live()` task per client."""

    def __init__(self, options: SwarmOptions) -> None:
        self.options = options
        self.state = SwarmState([ClientState(index) for index in range(options.count)])
        self.stopping = False
        self._rng = random.Random()
        self._joined_once = 0
        self.connected = 0
        """Clients joined right now."""
        self.collector = Collector(self._all_connected)
        self.lag = LoopLag()
        self._own_tasks: list[asyncio.Task[None]] = []

    def start(self) -> list[asyncio.Task[None]]:
        """One task per client (initial connects spread at `connect_rate_per_s`), the collector's and the lag
        probe's."""
        self.collector.start()
        self._own_tasks = [asyncio.create_task(self.collector.run()), asyncio.create_task(self.lag.run())]
        return [asyncio.create_task(self.live(client)) for client in self.state.clients]

    async def stop(self, tasks: list[asyncio.Task[None]]) -> list[str]:
        """End the run: cancel every client (each closes its socket), abort what is still open after a grace
        period. Returns a line per client task that had crashed (a bug, reported rather than hidden)."""
        self.stopping = True
        for task in self._own_tasks:
            task.cancel()
        crashed = [f"client {i}: {task.exception()!r}" for i, task in enumerate(tasks) if _crashed(task)]
        for task in tasks:
            task.cancel()
        if not tasks:
            return crashed
        _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
        for client in self.state.clients:
            if client.connection is not None:
                client.connection.transport.abort()
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return crashed

    async def live(self, client: ClientState) -> None:
        """Connect, hold, reconnect with backoff until the run stops or the token is refused."""
        options = self.options
        await asyncio.sleep(client.index / options.connect_rate_per_s)
        url = socket_url(options.url, f"{options.token_prefix}-{client.index}")
        backoff = Backoff(rng=self._rng)
        while not self.stopping:
            self.state.counts.connect_attempts += 1
            try:
                joined = await connect_and_join(url, options.topic, timeout_s=options.connect_timeout_s)
            except Unauthorized:
                self.state.counts.unauthorized += 1
                client.unauthorized = True
                return
            except Rejected as exc:
                delay_s = self._rejected(client, exc, backoff)
            except ConnectFailed:
                self.state.counts.connect_failures += 1
                delay_s = backoff.next_delay_s()
            else:
                backoff.reset()
                await self._session(client, joined)
                delay_s = backoff.next_delay_s()
            await asyncio.sleep(delay_s)

    def _all_connected(self) -> bool:
        """Every client that may connect is joined (a refused token never will be)."""
        return self.connected + self.state.counts.unauthorized == len(self.state.clients)

    async def _session(self, client: ClientState, joined: Joined) -> None:
        self._on_join(client, joined)
        try:
            ending = await hold(
                joined.connection,
                interval_s=self.options.heartbeat_interval_s,
                timeout_s=self.options.heartbeat_timeout_s,
            )
        except asyncio.CancelledError:
            await joined.connection.close()
            raise
        if not self.stopping:
            self._on_disconnect(client, ending)

    def _rejected(self, client: ClientState, exc: Rejected, backoff: Backoff) -> float:
        """Count a 503; Retry-After, when given, replaces the next backoff delay."""
        self.state.counts.rejected_503 += 1
        delay_s = backoff.next_delay_s()
        if exc.draining:
            self.state.counts.refused_draining += 1
        if exc.retry_after_s is None:
            return delay_s
        self.state.counts.rate_limited += 1
        client.rate_limited += 1
        return exc.retry_after_s

    def _on_join(self, client: ClientState, joined: Joined) -> None:
        client.joins += 1
        client.server = joined.server
        client.connection = joined.connection
        self.connected += 1
        if client.offline_since is not None:
            client.offline_since.offline_s = time.monotonic() - client.offline_since.at_monotonic_s
            client.offline_since = None
        if client.joins == 1:
            self._joined_once += 1
            if self._joined_once == len(self.state.clients):
                self.collector.freeze()
                self.lag.restart()
                emit({"event": "joined", "count": self._joined_once})

    def _on_disconnect(self, client: ClientState, ending: Ending) -> None:
        disconnect = Disconnect(client.index, time.time(), time.monotonic(), ending, client.server)
        self.state.disconnects.append(disconnect)
        client.offline_since = disconnect
        client.connection = None
        self.connected -= 1
        client.server = None


async def _run(options: SwarmOptions) -> tuple[dict[str, Any], list[str]]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    swarm = Swarm(options)
    started_s = loop.time()
    tasks = swarm.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=options.duration_s)
    end = snapshot(swarm.state)
    duration_s = loop.time() - started_s
    lag = swarm.lag.summary()
    crashed = await swarm.stop(tasks)
    report = _report(swarm.state, end, duration_s, options)
    report |= {"loop_lag_s": lag, "full_collections": swarm.collector.full_collections}
    return report, crashed


def _crashed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _report(state: SwarmState, end: EndSnapshot, duration_s: float, options: SwarmOptions) -> dict[str, Any]:
    return build_report(
        state,
        end,
        duration_s=duration_s,
        heartbeat_interval_s=options.heartbeat_interval_s,
        heartbeat_timeout_s=options.heartbeat_timeout_s,
    )


def _raise_open_files_limit(count: int) -> None:
    """Lift the soft open-files limit to the hard one: every client holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < count + 64:
        print(f"drainctl: open-files limit {soft} is below --count {count}; some clients cannot connect",
              file=sys.stderr)
