"""The promises of issue 9, checked after every step of a simulation.

    released once             no platform handle is released twice (a repeat by a restarted controller, which
                              the design allows because releases are idempotent, is not counted)
    released by deadline      no handle first released after its platform deadline, and none left unreleased
                              past it (repeating a release made in time, after a journal fault, is harmless)
    zero or reset first       no release while the last kernel count was above zero (or no count was taken)
                              unless a reset completed after it, or the episode's release deadline had come
    sockets closed at release the host really has no socket open at a release before the release deadline
                              (a reset that skips sockets, case 9, breaks it)
    budget                    at most the pool's slots draining at once, beyond them only episodes that
                              started at their deadline override (`must_start_by`)
    one drain request         no host gets a second drain request for one episode (or one operator request id)
    nothing lost              every event accepted before a crash is in the journal after it, with its handle
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.core.budget import Budget
from controller.core.models import Drain
from controller.engine.scheduling import must_start_by
from tests.simulation.fakes import Handle, SimHost


@dataclass(frozen=True)
class Violation:
    invariant: str
    at: float
    """Seconds of true time after the start."""
    detail: str

    def describe(self) -> str:
        return f"t=+{self.at:.2f} VIOLATION {self.invariant}: {self.detail}"


def at_release(
    drain: Drain, released: tuple[str, ...], host: SimHost, handles: Mapping[str, Handle], *, wall: float, epoch: int,
    source: str = "local",
) -> list[str]:
    """What is wrong with releasing `released`, handles of `drain`, through `source`'s releaser now: 'invariant:
    detail' lines. Each handle is judged by its own platform's deadline."""
    problems = []
    for ref in released:
        handle = handles[ref]
        if handle.source != source:
            problems.append(f"released once: {ref} of {handle.source} released through {source}'s releaser")
        if not handle.releases and host.clock.true > handle.not_after:  # a repeat of a release in time is moot
            problems.append(f"released by deadline: {ref} released {host.clock.true - handle.not_after:.2f} s late")
        if handle.releases and handle.releases[-1][1] == epoch:
            problems.append(f"released once: {ref} released again with no crash or journal fault since")
    early = drain.release_by is None or wall < drain.release_by
    if early and (host.last_count is None or host.last_count > 0) and not host.reset_since_count:
        problems.append(f"zero or reset first: {drain.instance} released with last kernel count {host.last_count} "
                        "and no reset since")
    if early and host.remaining() > 0:
        problems.append(f"sockets closed at release: {drain.instance} released with {host.remaining()} sockets open")
    return problems


def unreleased(handles: Iterable[Handle], now: float) -> list[str]:
    """Handles whose platform deadline passed without a release."""
    return [f"released by deadline: {h.ref} ({h.instance}, {h.source}) not released by its deadline"
            for h in handles if not h.releases and not h.refused and now > h.not_after]


def budget(drains: Iterable[Drain], *, slots: int, rules: Budget) -> list[str]:
    """Too many of one pool draining at once, beyond the deadline override."""
    active = [d for d in drains if d.active]
    pools = Counter(d.pool for d in active)
    problems = []
    for pool, count in pools.items():
        overriding = sum(1 for d in active if d.pool == pool and _overrode(d, rules))
        if count > slots + overriding:
            names = ", ".join(f"{d.instance}({d.phase})" for d in active if d.pool == pool)
            problems.append(f"budget: {count} of pool {pool} draining with {slots} slots: {names}")
    return problems


def _overrode(drain: Drain, rules: Budget) -> bool:
    start_by = must_start_by(not_after=drain.not_after, budget=rules, holds=drain.needs_release)
    return drain.drain_requested_at is not None and drain.drain_requested_at >= start_by - 1e-6


def drain_requests(host: SimHost, instance: str, requests: Mapping[int, str]) -> list[str]:
    """A second drain request for one episode; `requests`: episode id -> the operator's request id."""
    keys = Counter(requests.get(episode, str(episode)) for _, episode in host.drain_requests)
    return [f"one drain request: {instance} got {n} drain requests for episode {key}" for key, n in keys.items()
            if n > 1]
