"""The incident, replayed: a rolling replacement of three old servers by three new ones under 1,500 clients.

One `UpgradeRun` is one fleet: old1..old3 and new1..new3 behind HAProxy (the new ones out of rotation until
their turn), a swarm whose clients have no heartbeat timeout (they cannot notice a silent socket by
themselves), and the testbed platform that announces each old server's deletion, holds it until released or
until its notice runs out, then deletes it. With `controlled=True` there is also an agent per old server,
Prometheus and the controller; without, nothing drains: that is the incident.

The old servers misbehave as in the incident: old2 acknowledges drain requests and ignores them; old3 is
stopped with SIGSTOP just before its own lifecycle event. Step i: new_i joins the rotation (surge), then old_i
gets its notice; steps are `step_s` apart. Both runs follow the same clock (`run_side_by_side`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.core.errors import DrainctlError
from testbed.harness import AgentProcess, ControllerProcess, Fleet, LoadBalancer, Platform, Retirement, ServerProcess
from testbed.phoenix import CLOSE_SERVICE_RESTART
from testbed.scenarios.outages import OFFLINE_LIMIT_S, Outages, client_outages
from testbed.scenarios.sampling import Sample, SocketSampler

OLD = ("old1", "old2", "old3")
NEW = ("new1", "new2", "new3")
IGNORES_DRAIN = "old2"
WEDGED = "old3"
ROLES = {"old1": "drains", "old2": "ignores drain", "old3": "SIGSTOP"}

JOIN_TIMEOUT_S = 180.0
SURGE_TIMEOUT_S = 20.0
"""Bound on a new server coming UP in HAProxy once put back in rotation."""
SETTLED_FOR_S = 1.0
"""A run is over once the new servers have held every client this long (every join answered)."""
SWARM_DURATION_S = 3600.0
"""The swarm is stopped when its run ends; this only bounds a swarm nobody stops."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UpgradePlan:
    clients: int = 1500
    """Swarm size per run; spread over the three old servers (500 each)."""
    step_s: float = 6.0
    """Time between two old servers' lifecycle events."""
    lead_s: float = 2.0
    """A new server joins the rotation this long before its old server's event (surge first)."""
    stop_before_s: float = 0.25
    """old3 is SIGSTOPped this long before its event: wedged when its notice comes, as in the incident. Its
    clients' offline time counts from the stop (see `outages`), so this is a handicap the controller cannot
    win back."""
    settle_timeout_s: float = 30.0
    """After the last event (with the controller) or the last deletion: time allowed for clients to rejoin."""
    incident_bound_s: float = 70.0
    """The run without the controller ends at the latest this long after the first event, stuck clients or
    not (the real incident lasted 5-10 minutes; the demo must stay under 3)."""


@dataclass(frozen=True)
class ServerRow:
    """One old server's fate in a run."""

    server: str
    role: str
    sockets_before: int
    """Kernel count at its lifecycle event."""
    drained: int
    """Clients that got the graceful close (1012) from it."""
    reset: int
    """Clients whose connection through it was cut without a close frame (RST, or the deletion)."""
    stuck_at_end: int
    empty_after_s: float | None
    """From its event to its last socket gone (None: never, within the run)."""
    deleted_after_s: float | None
    released_by: str | None
    """controller, agent, or None (the platform waited for its deadline)."""
    controller_outcome: str | None = None
    controller_reason: str | None = None


@dataclass(frozen=True)
class RunResult:
    title: str
    controlled: bool
    rows: list[ServerRow]
    outages: Outages
    report: dict[str, Any] = field(repr=False)
    retirements: list[Retirement] = field(repr=False)
    started_at: float = 0.0
    """The first lifecycle event (unix seconds): time zero of the timeline."""
    ended_at: float = 0.0
    bounded: bool = False
    """True when the run was cut at `incident_bound_s` rather than settled."""
    stopped_at: float | None = None
    events: dict[str, float] = field(default_factory=dict)
    """Each old server's lifecycle event (unix seconds)."""
    samples: list[Sample] = field(default_factory=list, repr=False)
    """Kernel counts of every server of the run over time."""

    def problems(self) -> list[str]:
        """Why this run breaks the demo's promise (only meaningful for the controlled run)."""
        found = []
        if self.outages.over_limit:
            found.append(f"{self.outages.over_limit} clients were offline longer than {OFFLINE_LIMIT_S:g} s "
                         f"(max {self.outages.max_s:.1f} s)")
        if self.outages.stuck_at_end or self.outages.never_rejoined:
            found.append(f"{self.outages.stuck_at_end} clients stuck and {self.outages.never_rejoined} not "
                         "rejoined at the end")
        if self.report["connected_at_end"] != self.report["clients"]:
            found.append(f"{self.report['connected_at_end']} of {self.report['clients']} clients connected at the end")
        late = [r.server for r in self.retirements if not r.released_in_time]
        if late:
            found.append(f"not released before the platform deadline: {', '.join(late)}")
        return found


class UpgradeRun:
    """One fleet's rolling replacement, with or without the controller."""

    def __init__(self, fleet: Fleet, plan: UpgradePlan, *, controlled: bool) -> None:
        self.fleet = fleet
        self.plan = plan
        self.controlled = controlled
        self.title = "with the controller" if controlled else "without the controller (the incident)"
        self.servers: dict[str, ServerProcess] = {}
        self.agents: dict[str, AgentProcess] = {}
        self.controller: ControllerProcess | None = None
        self.retirements: dict[str, Retirement] = {}
        self.events: dict[str, float] = {}
        self.stopped_at: float | None = None
        self.result: RunResult | None = None
        self._lb: LoadBalancer | None = None
        self._platform: Platform | None = None
        self._sampler: SocketSampler | None = None
        self._settled_since: float | None = None

    @property
    def sampler(self) -> SocketSampler:
        assert self._sampler is not None, "prepare() first"
        return self._sampler

    @property
    def lb(self) -> LoadBalancer:
        assert self._lb is not None, "prepare() first"
        return self._lb

    @property
    def platform(self) -> Platform:
        assert self._platform is not None, "prepare() first"
        return self._platform

    def prepare(self, progress: Progress) -> None:
        """Start everything and wait until every client has joined an old server."""
        for name in OLD + NEW:
            self.servers[name] = self.fleet.start_server(name, fault="ignore-drain" if name == IGNORES_DRAIN else None)
        self._lb = self.fleet.start_haproxy(list(self.servers.values()))
        for name in NEW:
            self.lb.set_server_state(name, "maint")
        if self.controlled:
            olds = [self.servers[name] for name in OLD]
            prom = self.fleet.start_prometheus(olds)
            self.agents = {name: self.fleet.start_agent(self.servers[name]) for name in OLD}
            config = self.fleet.controller_config(list(self.agents.values()), prometheus=prom)
            self.controller = self.fleet.start_controller(config)
        self._platform = self.fleet.platform(controller=self.controller, lb=self.lb)
        swarm = self.fleet.start_swarm(self.lb.ws_url, count=self.plan.clients, duration_s=SWARM_DURATION_S,
                                       heartbeat_timeout_s=0)
        swarm.wait_joined(JOIN_TIMEOUT_S)
        self._sampler = SocketSampler({server.listen.port: name for name, server in self.servers.items()}).start()
        progress(f"{self.title}: {self.plan.clients} clients joined old1-old3 through HAProxy {self.lb.frontend}")

    def surge(self, index: int) -> None:
        """new_i joins the rotation; returns once HAProxy routes to it."""
        name = NEW[index]
        self.lb.set_server_state(name, "ready")
        self.lb.wait_state(name, "UP", timeout_s=SURGE_TIMEOUT_S)

    def stop_wedged(self) -> None:
        self.servers[WEDGED].pause()
        self.stopped_at = time.time()

    def retire(self, index: int) -> None:
        name = OLD[index]
        self.events[name] = time.time()
        self.retirements[name] = self.platform.retire(
            self.servers[name], agent=self.agents.get(name), notice_s=self.fleet.budget.platform_notice_s
        )

    def settled(self) -> bool:
        """Every old server deleted and the new ones have held every client's WebSocket for `SETTLED_FOR_S`
        (their own count: the kernel's also holds health checks and handshakes still in flight)."""
        deleted = len(self.retirements) == len(OLD) and all(r.deleted for r in self.retirements.values())
        if not deleted or sum(self.servers[name].open_sockets() for name in NEW) != self.plan.clients:
            self._settled_since = None
            return False
        now = time.monotonic()
        if self._settled_since is None:
            self._settled_since = now
        return now - self._settled_since >= SETTLED_FOR_S

    def finish(self, *, started_at: float, bounded: bool) -> RunResult:
        """End the run: stop the swarm, read the controller's history, and work out what every client saw."""
        ended_at = time.time()
        samples = self.sampler.stop()  # before the swarm leaves: the picture ends with the clients still on
        report = self.fleet.swarms[-1].stop()
        stopped = {WEDGED: self.stopped_at} if self.stopped_at is not None else {}
        outages = client_outages(report, stopped_at=stopped, ended_at=ended_at)
        history = self._history()
        rows = [self._row(name, report, samples, history.get(name)) for name in OLD]
        self.result = RunResult(self.title, self.controlled, rows, outages, report,
                                [self.retirements[name] for name in OLD], started_at, ended_at, bounded,
                                self.stopped_at, dict(self.events), list(samples))
        return self.result

    def _history(self) -> dict[str, dict[str, Any]]:
        if self.controller is None:
            return {}
        try:
            return {drain["instance"]: drain for drain in reversed(self.controller.history())}
        except DrainctlError:
            return {}

    def _row(
        self, name: str, report: dict[str, Any], samples: Sequence[Sample], drain: dict[str, Any] | None
    ) -> ServerRow:
        event_at = self.events[name]
        retirement = self.retirements[name]
        mine = [d for d in report["disconnects"] if d["server"] == name]
        before = [s.counts.get(name, 0) for s in samples if s.at <= event_at]
        empty = next((s.at for s in samples if s.at > event_at and s.counts.get(name, 0) == 0), None)
        return ServerRow(
            server=name,
            role=ROLES[name],
            sockets_before=before[-1] if before else 0,
            drained=sum(1 for d in mine if d["cause"] == "close" and d["code"] == CLOSE_SERVICE_RESTART),
            reset=sum(1 for d in mine if d["cause"] == "reset"),
            stuck_at_end=sum(1 for c in report["per_client"] if c["server"] == name),
            empty_after_s=None if empty is None else empty - event_at,
            deleted_after_s=None if retirement.deleted_at is None else retirement.deleted_at - event_at,
            released_by=retirement.released_by,
            controller_outcome=drain.get("outcome") if drain else None,
            controller_reason=drain.get("reason") if drain else None,
        )


def run_side_by_side(runs: Sequence[UpgradeRun], plan: UpgradePlan, progress: Progress) -> list[RunResult]:
    """Both runs' upgrades on one clock; each ends when settled (or at its time bound)."""
    try:
        started_at = _upgrade(runs, plan, progress)
        _wait_settled(runs, plan, started_at, progress)
    finally:
        for run in runs:
            if run._sampler is not None:
                run._sampler.stop()
    return [run.result for run in runs if run.result is not None]


def _upgrade(runs: Sequence[UpgradeRun], plan: UpgradePlan, progress: Progress) -> float:
    """The rolling replacement's schedule; returns the first event's time (the timeline's zero)."""
    started_at = time.time() + plan.lead_s
    for index, name in enumerate(OLD):
        event_at = started_at + index * plan.step_s
        _sleep_until(event_at - plan.lead_s)
        for run in runs:
            run.surge(index)
        if name == WEDGED:
            _sleep_until(event_at - plan.stop_before_s)
            for run in runs:
                run.stop_wedged()
            progress(f"t={time.time() - started_at:4.1f} s  {name} stopped (SIGSTOP)")
        _sleep_until(event_at)
        for run in runs:
            run.retire(index)
        progress(f"t={time.time() - started_at:4.1f} s  {NEW[index]} in rotation; lifecycle event for {name} "
                 f"({ROLES[name]}), deletion due in {runs[0].fleet.budget.platform_notice_s:g} s")
    return started_at


def _wait_settled(runs: Sequence[UpgradeRun], plan: UpgradePlan, started_at: float, progress: Progress) -> None:
    last_event = started_at + (len(OLD) - 1) * plan.step_s
    pending = list(runs)
    while pending:
        for run in list(pending):
            settled = run.settled()
            if settled or time.time() >= _bound(run, plan, started_at, last_event):
                result = run.finish(started_at=started_at, bounded=not settled)
                how = "settled" if settled else "cut at its time bound"
                progress(f"t={time.time() - started_at:4.1f} s  run {result.title}: {how}")
                pending.remove(run)
        if pending:
            time.sleep(0.25)  # a poll interval: settled() above decides


def _bound(run: UpgradeRun, plan: UpgradePlan, started_at: float, last_event: float) -> float:
    if run.controlled:
        return last_event + plan.settle_timeout_s
    deletions = last_event + run.fleet.budget.platform_notice_s + plan.settle_timeout_s
    return min(started_at + plan.incident_bound_s, deletions)


def _sleep_until(at: float) -> None:
    """The scenario's schedule (a timeline, not a synchronization): wait for a planned instant."""
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)
