"""The promises of the agent's fallback (issue 9, Build item 3), checked at every release and every act.

    released once             the platform accepts one release per notice; a repeat counts only when the state
                              file already said "released" or no crash came between (a crash after the platform
                              accepted and before the file recorded it is the design's idempotent repeat)
    released by deadline      every notice the platform holds is released by its (earliest) deadline, unless the
                              agent was down at it or the platform's release failing just before it
    zero or reset first       the fallback releases before its deadline (`not_after - reset_margin_s`) only after
                              a zero kernel count, or a completed reset after the last count
    sockets closed at release a release by the fallback before its deadline leaves no socket open (sockets a
                              reset cannot destroy must be reset again, or wait for the deadline)
    controller first          the fallback acts (drain, reset, release) only for a notice whose grace is over
                              and that the controller did not drain in time (within `grace_s` before the notice
                              or during its grace), or at that notice's deadline
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controller.agent.notices import Notice
from tests.controller.engine.fakes import T0
from tests.simulation.fallback_world import AgentHost, PlatformNotice

SLACK_S = 0.3
"""Boundaries of the grace are judged with this slack either way (a controller drain in the same poll as the
grace's end may go either way)."""


@dataclass(frozen=True)
class Ownership:
    """What the invariants know of one notice: when the agent first saw it, its grace, the controller's claim."""

    seen: float
    """True time of the agent's first sight of it."""
    grace_s: float
    deadline: float
    """The fallback's deadline on the agent's wall clock (`not_after - reset_margin_s`)."""
    controller: bool
    """The controller drained in time: the fallback must stay out of its way until the deadline."""
    slack_s: float = 0.3
    """How far the grace's end may be off: `SLACK_S`, plus the size of a wall-clock step (a restarted agent
    computes what is left of the grace from the wall clock: `seen_at` is the one time its state file keeps)."""


def at_release(notice: Notice, actor: str, held: PlatformNotice, host: AgentHost, *, wall: float, incarnation: int,
               owner: Ownership, excused: bool) -> list[str]:
    """What is wrong with the platform accepting a release of `notice` by `actor` now."""
    problems = []
    late_s = host.clock.true - held.not_after
    if late_s > 1e-9 and not excused:
        problems.append(f"released by deadline: {notice.id} released {late_s:.2f} s late")
    if held.releases and (held.recorded or held.releases[-1][2] == incarnation):
        first = held.releases[0]
        problems.append(f"released once: {notice.id} released again by {actor} (first at +{first[0] - T0:.2f}"
                        f" by {first[1]}{', recorded in the state file' if held.recorded else ''})")
    if actor != "agent" or wall >= owner.deadline:
        return problems
    if (host.last_count is None or host.last_count > 0) and not host.reset_since_count:
        problems.append(f"zero or reset first: {notice.id} released with last kernel count {host.last_count} and "
                        "no reset since")
    if host.remaining() > 0:
        problems.append(f"sockets closed at release: {notice.id} released with {host.remaining()} sockets open "
                        f"{owner.deadline - wall:.2f} s before the deadline")
    if owner.controller or host.clock.true < owner.seen + owner.grace_s - owner.slack_s:
        problems.append(f"controller first: the fallback released {notice.id} "
                        f"{'drained by the controller' if owner.controller else 'within its grace'} "
                        f"{owner.deadline - wall:.2f} s before its deadline")
    return problems


def at_act(op: str, now: float, wall: float, owners: Iterable[tuple[str, Ownership]]) -> list[str]:
    """What is wrong with the fallback's `op` (drain, reset) now: no open notice allows it."""
    owners = list(owners)
    for _, owner in owners:
        if wall >= owner.deadline - SLACK_S:
            return []
        if not owner.controller and now >= owner.seen + owner.grace_s - owner.slack_s:
            return []
    why = ", ".join(f"{name} ({'controller' if o.controller else 'in grace'})" for name, o in owners) or "none"
    return [f"controller first: the fallback's {op} with no notice allowing it (open: {why})"]


def unreleased(notices: Iterable[PlatformNotice], now: float, excused: Iterable[str]) -> list[str]:
    """Held notices whose deadline passed without a release (`excused`: ids the agent could not release)."""
    spared = set(excused)
    return [f"released by deadline: {n.id} not released by its deadline" for n in notices
            if n.held and not n.releases and now > n.not_after and n.id not in spared]
