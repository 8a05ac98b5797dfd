"""The guest's shutdown hold: the host's shutdown waits here until its sockets are drained (verified) or reset.

The agent's systemd unit runs `drainctl agent hold` as ExecStop, which calls `POST /v1/shutdown-hold`; on GCP
this is how a MIG's deletion or a graceful shutdown is held (DESIGN.md §4: "the agent's shutdown hook returns").

    notices open      wait until every one of them is released (the controller's release after its verified
                      drain, or the agent's own fallback: drain, verify, reset, release before not_after)
    none open         open one (`shutdown/<time>`, kind stop, not_after = now + window): the controller sees it
                      through the local source, the fallback acts after its grace period; then wait as above

    notice_id given   open that notice (idempotent by id; kind terminate, source prestop, not_after as given or
                      now + window) and wait for it alone: Kubernetes' `hold: prestop`, where the app container's
                      preStop hook holds with the pod uid and the controller releases `/v1/notices/{uid}/release`

Bounded: it returns at the latest `window_s` after it was called (measured on the monotonic clock: a wall-clock
step neither cuts it short nor stretches it), or at `not_after` (a wall-clock instant), released or not
(`timed_out`), and the unit's TimeoutStopSec (the pod's grace period) is above that. Never before the release:
that is the whole point.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from controller.agent.node import NodeAgent
from controller.agent.notices import Notice, NoticeState
from controller.core.clocks import SleepingClock as Clock
from controller.protocol import agent as wire

log = logging.getLogger("drainctl.agent.holding")

POLL_S = 0.1
"""How often the hold looks at the notices; the shutdown goes on within this much of the release."""


@dataclass(frozen=True)
class HoldResult:
    outcome: str
    """`released`: every notice was released; `timed_out`: the window ended first."""
    held_s: float
    notices: tuple[str, ...]
    """The notices the hold waited for."""

    def to_wire(self) -> wire.HoldAnswer:
        """The answer of `POST /v1/shutdown-hold` (controller/protocol/agent.py)."""
        return wire.HoldAnswer(outcome=self.outcome, held_s=round(self.held_s, 3), notices=list(self.notices))


async def hold(
    agent: NodeAgent, *, window_s: float, clock: Clock, notice_id: str | None = None, not_after: float | None = None
) -> HoldResult:
    """Wait for the release; `notice_id`: of that notice alone (due at `not_after`, default now + window_s)."""
    start, started = clock.now(), clock.monotonic()
    until = not_after if not_after is not None else start + window_s
    ends_at = None if not_after is not None else started + window_s  # a window is a duration (issue 9, case 8)

    def left_s() -> float:
        return until - clock.now() if ends_at is None else ends_at - clock.monotonic()

    if notice_id is not None:
        notice, _ = agent.add_notice(notice_id, "terminate", until, source="prestop")
        mine = notice

        def still_open() -> list[Notice]:
            return [] if mine.state is NoticeState.RELEASED else [mine]
    else:
        if not agent.book.unreleased():
            agent.add_notice(f"shutdown/{start:.3f}", "stop", until, source="shutdown")

        def still_open() -> list[Notice]:
            return agent.book.unreleased()
    waiting = (notice_id,) if notice_id is not None else tuple(notice.id for notice in still_open())
    log.info("shutdown hold: waiting up to %.0f s for %s", until - start, ", ".join(waiting))
    while still_open() and left_s() > 0:
        await clock.sleep(min(POLL_S, left_s()))
    open_ = still_open()
    result = HoldResult("timed_out" if open_ else "released", clock.monotonic() - started, waiting)
    if open_:
        log.error("shutdown hold: window of %.0f s over with %s still open; letting the shutdown go on",
                  until - start, ", ".join(n.id for n in open_))
    else:
        log.info("shutdown hold: released after %.1f s; letting the shutdown go on", result.held_s)
    return result
