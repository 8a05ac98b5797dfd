"""A scenario of the agent's fallback drawn from a seed: the host, the notices, the controller, the faults.

One host and its agent: one or two platform notices (with duplicates, a shortened deadline, a withdrawal), a
controller that stays silent, drains and releases, or drains and dies; an app that drains at a pace, ignores
the drain or is stopped; sockets a reset cannot destroy; outages of the app hook, the kernel count, the reset
and the platform's release; wall-clock steps; agent crashes between steps and at any boundary crossing (a
state-file write, a release, a reset ...), each followed by a restart from the state file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from controller.agent.config import FallbackConfig
from tests.simulation.fakes import Outage

FAULT_KINDS = {"drain": ("timeout", "unreachable", "rejected"), "count": ("temporary", "permanent", "hang"),
               "reset": ("temporary", "permanent", "hang"), "release": ("temporary",)}
"""hang: `ss` does not answer until it is killed at its timeout (30 s), then a temporary error."""


@dataclass(frozen=True)
class Step:
    """One thing that happens at `at` (seconds of true time after the start)."""

    at: float
    action: str
    """notice, shorten, withdraw, controller, crash, clock."""
    notice: str = ""
    deadline: float = 0.0
    """notice, shorten: the platform's deadline (seconds after the start)."""
    grace_s: float | None = None
    """notice: the notice's own grace (None: the agent's `fallback.grace_s`)."""
    plan: str = ""
    """controller: `releases` (drains, counts, resets when stuck, releases) or `dies` (drains, then silence)."""
    release_in_s: float = 0.0
    """controller: how long after its drain it resets what is left and releases at the latest."""
    offset: float = 0.0

    def describe(self) -> str:
        what = {
            "notice": f"notice {self.notice} deadline=+{self.deadline:.2f} grace_s={self.grace_s}",
            "shorten": f"notice {self.notice} again, deadline shortened to +{self.deadline:.2f}",
            "withdraw": f"notice {self.notice} withdrawn by the platform",
            "controller": f"controller drains ({self.plan}, releases within {self.release_in_s:.1f} s)",
            "crash": "agent killed between steps",
            "clock": f"clock step: wall clock {self.offset:+.2f} s off",
        }[self.action]
        return f"t=+{self.at:.2f} {what}"


@dataclass(frozen=True)
class Scenario:
    seed: int
    config: FallbackConfig
    sockets: int
    behaviour: str
    app_rate_per_s: float | None
    stuck: int
    steps: tuple[Step, ...]
    outages: tuple[Outage, ...] = ()
    """Seconds after the start."""
    crashes: dict[int, str] = field(default_factory=dict)
    """Crashes by boundary crossing number: crash_before, crash_after."""
    restart_s: float = 1.0
    """How long a killed agent stays down before it runs again (systemd's Restart=)."""

    def describe(self) -> list[str]:
        c = self.config
        head = (f"seed {self.seed}: grace_s={c.grace_s} rate={c.drain_rate_per_s:g}/s margin={c.reset_margin_s:g} s; "
                f"{self.sockets} sockets, app {self.behaviour} (pace {self.app_rate_per_s}), {self.stuck} stuck; "
                f"restart after {self.restart_s:.2f} s")
        crashes = ", ".join(f"#{n} {kind}" for n, kind in sorted(self.crashes.items())) or "none"
        outages = [f"outage {o.op} {o.kind} +{o.start:.2f}..+{o.end:.2f}" for o in self.outages]
        return [head, f"crashes at boundary crossings: {crashes}", *outages, *(s.describe() for s in self.steps)]


def generate(seed: int) -> Scenario:
    rng = random.Random(f"fallback-{seed}")
    config = FallbackConfig(grace_s=rng.choice((0.0, 2.0, 5.0, 8.0)), drain_rate_per_s=rng.choice((20, 50, 200)),
                            no_progress_window_s=3.0, reset_margin_s=rng.choice((3.0, 5.0, 8.0)), poll_s=0.25)
    steps = _notices(rng)
    first = steps[0]
    if rng.random() < 0.5:
        steps.append(_controller(rng, first, config.grace_s))
    for _ in range(rng.choice((0, 0, 1, 2))):
        steps.append(Step(rng.uniform(0, 90), "crash"))
    if rng.random() < 0.2:
        steps.append(Step(rng.uniform(0, 60), "clock", offset=rng.choice((-1, 1)) * rng.uniform(0.5, 1.5)))
    outages = tuple(_outage(rng) for _ in range(rng.randint(0, 4)))
    crashes = {rng.randint(1, 120): rng.choice(("crash_before", "crash_after")) for _ in range(rng.choice((0, 1, 2)))}
    behaviour = rng.choice(("graceful", "graceful", "graceful", "ignore", "stopped"))
    return Scenario(seed, config, rng.randint(0, 300), behaviour, rng.choice((None, None, 5.0, 0.5)),
                    rng.randint(1, 5) if rng.random() < 0.15 else 0, tuple(sorted(steps, key=lambda s: s.at)),
                    outages, crashes, rng.uniform(0.2, 3.0))


def _notices(rng: random.Random) -> list[Step]:
    start = rng.uniform(0, 10)
    deadline = start + rng.uniform(20, 90)
    grace = 0.0 if rng.random() < 0.2 else None
    steps = [Step(start, "notice", "n1", deadline, grace)]
    if rng.random() < 0.4:  # a duplicate (the watcher reads the same event again)
        steps.append(Step(rng.uniform(start, deadline), "notice", "n1", deadline, grace))
    if rng.random() < 0.3:
        shorter = max(start + 15, deadline - rng.uniform(5, 40))
        steps.append(Step(max(start, rng.uniform(start, shorter - 15)), "shorten", "n1", shorter))
    if rng.random() < 0.1:
        steps.append(Step(rng.uniform(start, deadline), "withdraw", "n1"))
    if rng.random() < 0.3:  # a second notice of its own (another event, a new etag)
        at = rng.uniform(start, deadline)
        steps.append(Step(at, "notice", "n2", at + rng.uniform(20, 90), grace))
    return steps


def _controller(rng: random.Random, first: Step, grace_s: float) -> Step:
    """A controller drain before, during or after the first notice's grace."""
    at = max(0.0, first.at + rng.uniform(-grace_s - 1.0, grace_s + 3.0))
    return Step(at, "controller", plan=rng.choice(("releases", "releases", "dies")),
                release_in_s=rng.uniform(2.0, 40.0))


def _outage(rng: random.Random) -> Outage:
    op = rng.choice(tuple(FAULT_KINDS))
    start = rng.uniform(0, 70)
    return Outage(start, start + rng.choice((rng.uniform(0.3, 3.0), rng.uniform(3.0, 30.0))), op,
                  rng.choice(FAULT_KINDS[op]))
