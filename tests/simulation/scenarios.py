"""A scenario drawn from a seed: what the platforms, the operators, the agents, the journal and the clock do.

Every step carries the case of issue 9 whose fault it exercises (None: a fault the controller must survive
today). The whole scenario is drawn first and the steps of switched-off cases are dropped when it is played,
so a seed plays the same with any set of cases switched on, minus those steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.simulation.fakes import Outage

INSTANCES = ("A", "B", "C", "D")

STALE_HANDLE = "stale handle"
"""Found by this simulation, beyond the eleven cases: a second, older notice of an instance (another handle, an
earlier deadline) delivered after the episode ended is stale, and its handle is never released."""

SECOND_SOURCE = "second platform"
"""Beyond the eleven cases: a second platform's notice for an instance another platform's notice is draining
(a GCP preemption beside the agent's notice), with its own handle and deadline; its handle used to be dropped."""

SECOND = "gcp"
"""The second platform's source (its handles end in `g`; the first platform's source is `local`)."""


@dataclass(frozen=True)
class Step:
    """One thing that happens at `at` (seconds of true time after the start)."""

    at: float
    action: str
    """notice, manual, retry, outage, crash, clock, stuck, leader (offset -1: lost, +1: won back)."""
    instance: str = ""
    ref: str = ""
    deadline: float = 0.0
    """notice: the platform's deadline (seconds after the start); manual: the operator's deadline in seconds."""
    sockets: int = 0
    behaviour: str = "graceful"
    rate: float | None = None
    """notice: the app's real drain pace; manual: the operator's `--rate`."""
    during_io: bool = False
    """notice: delivered while the instance's next agent call is in flight."""
    outage: Outage | None = None
    offset: float = 0.0
    case: str | None = None
    source: str = "local"
    """notice: the platform that sends it (`local`, or `SECOND`)."""

    def describe(self) -> str:
        table: dict[str, Callable[[], str]] = {
            "notice": lambda: (f"notice {self.instance} {self.source} ref={self.ref} deadline=+{self.deadline:.1f} "
                               f"sockets={self.sockets} {self.behaviour} app_rate={self.rate}"
                               + (" during-io" if self.during_io else "")),
            "manual": lambda: f"manual drain {self.instance} deadline_s={self.deadline:.1f} rate={self.rate} "
                              f"request={self.ref or None}",
            "retry": lambda: f"manual drain retried {self.instance} request={self.ref}",
            "outage": lambda: f"outage {self.instance} {self.outage}",
            "crash": lambda: "controller crash and restart",
            "clock": lambda: f"clock step: wall clock {self.offset:+.2f} s off",
            "leader": lambda: "leadership lost to another replica" if self.offset < 0 else "leadership won back",
            "stuck": lambda: f"{self.instance}: {self.sockets} sockets the kernel cannot destroy",
        }
        what = table[self.action]()
        return f"t=+{self.at:.2f} {what}" + (f" [{self.case}]" if self.case else "")


@dataclass(frozen=True)
class Scenario:
    seed: int
    instances: tuple[str, ...]
    slots: int
    steps: tuple[Step, ...]
    journal_faults: dict[int, str] = field(default_factory=dict)

    def describe(self) -> list[str]:
        faults = ", ".join(f"#{n} {kind}" for n, kind in sorted(self.journal_faults.items())) or "none"
        head = f"seed {self.seed}: instances {','.join(self.instances)} (pool web, {self.slots} slots); "
        return [head + f"journal faults at writes: {faults}", *(s.describe() for s in self.steps)]


def generate(seed: int) -> Scenario:
    """The scenario of `seed`: a few instances, each with one or two lifecycle operations and faults."""
    rng = random.Random(seed)
    instances = INSTANCES[: rng.randint(2, 4)]
    manual_only = instances[-1] if rng.random() < 0.4 else None
    steps: list[Step] = []
    for instance in instances:
        steps += _manual_steps(rng, instance) if instance == manual_only else _platform_steps(rng, instance)
    steps += _faults(rng, instances)
    journal = {rng.randint(1, 60): rng.choice(("error", "error", "crash_before", "crash_after"))
               for _ in range(rng.randint(0, 3))}
    steps += _second_platform(random.Random(seed * 1_000_003 + 17), steps)
    ordered = tuple(sorted(steps, key=lambda s: s.at))
    return Scenario(seed, instances, rng.randint(1, 2), ordered, journal)


def _platform_steps(rng: random.Random, instance: str) -> list[Step]:
    steps: list[Step] = []
    start = rng.uniform(0, 15)
    for op in range(rng.choice((1, 1, 2))):
        steps += _operation(rng, instance, f"{instance}-{op}", start)
        start += rng.uniform(70, 100)
    if rng.random() < 0.3:  # an operator's drain before, during or after the platform's
        at = rng.choice((rng.uniform(0, 40), max(0.0, start - rng.uniform(0.5, 3.0))))
        steps.append(Step(at, "manual", instance, deadline=rng.uniform(5, 30), sockets=rng.randint(50, 300),
                          rate=rng.choice((None, 5.0)), case="case 3"))
    return steps


def _operation(rng: random.Random, instance: str, name: str, start: float) -> list[Step]:
    """One lifecycle operation: its notice, and maybe duplicates, a shortened deadline, a second handle."""
    deadline = start + rng.uniform(30, 90)
    behaviour = rng.choice(("graceful", "graceful", "graceful", "ignore", "stopped"))
    rate = rng.choice((None, None, 5.0, 20.0))
    first = Step(start, "notice", instance, f"{name}a", deadline, rng.randint(0, 300), behaviour, rate)
    steps = [first]
    if rng.random() < 0.4:
        steps.append(_again(first, at=rng.uniform(start, deadline)))
    if rng.random() < 0.3:
        shorter = max(start + 15, deadline - rng.uniform(5, 40))
        steps.append(_again(first, at=rng.uniform(start, shorter - 10), deadline=shorter))
    if rng.random() < 0.3:
        earlier = rng.uniform(start + 15, deadline)  # an older notice of the same operation, delivered late
        steps.append(_again(first, at=rng.uniform(start, earlier - 5), deadline=earlier, ref=f"{name}b",
                            case=STALE_HANDLE))
    if rng.random() < 0.25:
        tighter = max(start + 15, deadline - rng.uniform(0, 30))
        steps.append(_again(first, at=start + rng.uniform(0, 5), deadline=tighter, ref=f"{name}c", during_io=True,
                            case="case 1"))
    if rng.random() < 0.15:
        steps.append(Step(start, "stuck", instance, sockets=rng.randint(1, 5), case="case 9"))
    if rng.random() < 0.3:  # an agent fault aimed at the drain's first seconds, where its calls are
        at, kind = start + rng.uniform(0, 5), rng.choice(("timeout", "unreachable", "503"))
        outage = Outage(at, at + rng.uniform(0.3, 3.0), rng.choice(("drain", "count", "reset", "release")), kind)
        steps.append(Step(at, "outage", instance, outage=outage, case="case 2" if kind == "503" else None))
    return steps


def _second_platform(rng: random.Random, steps: list[Step]) -> list[Step]:
    """A second platform's notices for some operations (drawn from a stream of their own, so every other step
    of a seed is what it was before this case existed): another handle, a deadline earlier or later than the
    first platform's, sometimes while an agent call is out; and that platform's release failing for a while
    (timeouts, refused connections, 503s) or refused for good (its handle is then the platform's to let go)."""
    extra: list[Step] = []
    firsts = {s.ref: s for s in reversed(steps) if s.action == "notice" and s.ref.endswith("a")}  # not the copies
    for first in sorted(firsts.values(), key=lambda s: s.ref):
        if rng.random() >= 0.35:
            continue
        at = max(0.0, first.at + rng.uniform(-5, 20))
        deadline = max(at + 15, first.at + rng.uniform(25, 100))
        extra.append(Step(at, "notice", first.instance, f"{first.ref[:-1]}g", deadline, first.sockets, first.behaviour,
                          first.rate, during_io=rng.random() < 0.3, case=SECOND_SOURCE, source=SECOND))
        if rng.random() < 0.4:  # aimed at the first half minute, where most releases are; over 4 s before the
            start = rng.uniform(at, max(at, min(at + 30, deadline - 12, first.deadline - 12)))  # deadlines
            kind = rng.choice(("timeout", "unreachable", "503", "503", "refuse"))
            outage = Outage(start, start + rng.uniform(1, 8), f"release {SECOND}", kind)
            extra.append(Step(start, "outage", first.instance, outage=outage, case=SECOND_SOURCE))
    return extra


def _again(first: Step, *, at: float, deadline: float | None = None, ref: str | None = None,
           during_io: bool = False, case: str | None = None) -> Step:
    """The same notice delivered again (a duplicate), or with a changed deadline or another handle."""
    return Step(at, "notice", first.instance, ref or first.ref, first.deadline if deadline is None else deadline,
                first.sockets, first.behaviour, first.rate, during_io=during_io, case=case, source=first.source)


def _manual_steps(rng: random.Random, instance: str) -> list[Step]:
    at = rng.uniform(0, 30)
    request = f"req-{instance}" if rng.random() < 0.5 else ""
    rate = rng.choice((None, None, 50.0))
    steps = [Step(at, "manual", instance, request, rng.uniform(5, 30), rng.randint(0, 300), "graceful", rate)]
    if request and rng.random() < 0.4:
        steps.append(Step(at + rng.uniform(0.5, 10), "retry", instance, request, case="case 10"))
    return steps


def _faults(rng: random.Random, instances: tuple[str, ...]) -> list[Step]:
    steps: list[Step] = []
    for _ in range(rng.randint(0, 3)):
        at, kind = rng.uniform(0, 60), rng.choice(("timeout", "unreachable", "503"))
        outage = Outage(at, at + rng.uniform(0.3, 3.0), rng.choice(("drain", "count", "reset", "release")), kind)
        steps.append(Step(at, "outage", rng.choice(instances), outage=outage, case="case 2" if kind == "503" else None))
    for _ in range(rng.choice((0, 0, 1, 2))):
        steps.append(Step(rng.uniform(0, 80), "crash"))
    if rng.random() < 0.15:  # this replica loses the leadership to another and wins it back
        lost = rng.uniform(0, 50)
        steps.append(Step(lost, "leader", offset=-1.0, case="case 11"))
        steps.append(Step(lost + rng.uniform(2, 20), "leader", offset=1.0, case="case 11"))
    if rng.random() < 0.2:
        steps.append(Step(rng.uniform(0, 60), "clock", offset=rng.choice((-1, 1)) * rng.uniform(0.5, 1.5),
                          case="case 8"))
    return steps
