"""The testbed's platform: the supervisor that announces a server's deletion, holds it, then deletes it.

It plays what a cloud does to a VM in a rolling upgrade or a scale-in (DESIGN.md §4, "local" platform):

1. **Notice**: it posts a lifecycle notice (`id`, `kind`, `not_after` = now + notice) to the host's node agent,
   as the platform's notice service would (Azure Scheduled Events, GCP metadata), and pushes the same event to
   the controller (`POST /v1/events`), so the drain starts at once instead of at the next notice poll. With
   `deregister`, it also takes the server out of HAProxy's rotation (state `maint`: no new connections and
   no more health checks, established ones kept), like a GCP backend service draining an instance it is
   deleting. Health checks would otherwise add short-lived connections to the server's socket count.
2. **Hold**: it polls the agent's notice until it reads `released` (the controller's release, or the agent's
   own fallback) or until `not_after`, whichever comes first. Without an agent it just waits for `not_after`.
3. **Delete**: it SIGKILLs the server and its agent. "Deleted" in the testbed means exactly that: the
   processes vanish without running any shutdown code, and the kernel closes their sockets (a FIN, or a RST
   where data was pending), so HAProxy drops the clients' connections at once, as the final RST of a deleted
   VM does. What it does *not* reproduce: on a real deletion the peers may hear nothing at all until their
   next packet, and the LB's health checks decide when it leaves rotation.

Each retirement runs on its own thread and records what happened (`Retirement`); `Platform.close()` (called by
`Fleet.close`) stops the waiting threads without deleting anything.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from controller.core.errors import DrainctlError, PermanentError, TemporaryError
from testbed.harness.agents import AgentProcess
from testbed.harness.controllers import ControllerProcess
from testbed.harness.haproxy import LoadBalancer
from testbed.harness.servers import ServerProcess

POLL_S = 0.05
"""How often the platform reads the notice's state: the hold ends within this much of the release."""


@dataclass
class Retirement:
    """One server's notice, hold and deletion, as the platform saw them (unix seconds)."""

    server: str
    notice_id: str
    kind: str
    announced_at: float
    not_after: float
    event_posted_at: float | None = None
    """When the push to the controller returned (None: no controller)."""
    disposition: str | None = None
    """What the controller did with the pushed event (started, merged, duplicate, stale)."""
    released_at: float | None = None
    """When the platform saw the notice released (None: never, it waited for not_after)."""
    released_by: str | None = None
    """`controller` or `agent` (its local fallback), as the agent's notice says."""
    deleted_at: float | None = None
    agent_metrics: str | None = field(default=None, repr=False)
    """The agent's /metrics text just before deletion (what it did, counted on the host)."""
    error: str | None = None
    """Why the platform itself failed (an unexpected error in its thread)."""
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def released_in_time(self) -> bool:
        return self.released_at is not None and self.released_at < self.not_after

    def wait_deleted(self, timeout_s: float) -> Retirement:
        """Wait until the server was deleted; raises TemporaryError after `timeout_s`."""
        if not self._done.wait(timeout_s):
            raise TemporaryError(f"platform: {self.server} not deleted within {timeout_s:g} s")
        if self.error is not None:
            raise PermanentError(f"platform: retiring {self.server} failed: {self.error}")
        return self


class Platform:
    """Announces, holds and deletes servers of one fleet (see the module docstring)."""

    def __init__(self, *, controller: ControllerProcess | None = None, lb: LoadBalancer | None = None) -> None:
        self.controller = controller
        self.lb = lb
        self.retirements: list[Retirement] = []
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []

    def retire(
        self,
        server: ServerProcess,
        *,
        agent: AgentProcess | None = None,
        notice_s: float,
        kind: str = "terminate",
        notice_id: str | None = None,
        deregister: bool = True,
        push: bool = True,
    ) -> Retirement:
        """Announce `server`'s deletion `notice_s` from now, hold it, delete it; returns at once.

        `push=False` leaves the controller to find the notice by polling the agent (the local source's
        pull half).
        """
        now = time.time()
        retirement = Retirement(server.name, notice_id or f"{server.name}-{secrets.token_hex(4)}", kind, now,
                                now + notice_s)
        self.retirements.append(retirement)
        if deregister and self.lb is not None:
            self.lb.set_server_state(server.name, "maint")
        if agent is not None:
            agent.post_notice(retirement.notice_id, kind, retirement.not_after)
        if push and self.controller is not None:
            answer = self.controller.post_event(server.name, kind=kind, not_after=retirement.not_after,
                                                notice_id=retirement.notice_id)
            retirement.event_posted_at = time.time()
            retirement.disposition = str(answer.get("disposition"))
        thread = threading.Thread(target=self._hold_then_delete, args=(retirement, server, agent),
                                  name=f"platform-{server.name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return retirement

    def close(self) -> None:
        """Stop waiting (deleting nothing more); the fleet tears the processes down itself."""
        self._closing.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _hold_then_delete(self, retirement: Retirement, server: ServerProcess, agent: AgentProcess | None) -> None:
        try:
            self._hold(retirement, agent)
            if self._closing.is_set():
                return
            if agent is not None:
                retirement.agent_metrics = _last_words(agent)
                agent.kill()
            server.kill()
            retirement.deleted_at = time.time()
        except Exception as exc:  # recorded and re-raised by wait_deleted: a thread cannot raise to the test
            retirement.error = f"{type(exc).__name__}: {exc}"
        finally:
            retirement._done.set()

    def _hold(self, retirement: Retirement, agent: AgentProcess | None) -> None:
        while not self._closing.is_set() and time.time() < retirement.not_after:
            if agent is not None and _released(retirement, agent):
                return
            self._closing.wait(min(POLL_S, max(0.0, retirement.not_after - time.time())))


def _released(retirement: Retirement, agent: AgentProcess) -> bool:
    try:
        notice = agent.notice(retirement.notice_id)
    except DrainctlError:
        return False  # the agent is busy or gone: the platform keeps its own deadline
    if notice.state != "released":
        return False
    retirement.released_at = notice.released_at if notice.released_at is not None else time.time()
    retirement.released_by = notice.released_by
    return True


def _last_words(agent: AgentProcess) -> str | None:
    try:
        return agent.metrics_text()
    except DrainctlError:
        return None
