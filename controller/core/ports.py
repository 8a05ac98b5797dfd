"""The ports of the engine: what it needs of the world, as Protocols (DESIGN.md §8).

The engine imports these and nothing of any platform; a platform package (`controller/platforms/*`) and the
shared adapters (`controller/hosts`, `controller/prometheus`, `controller/journal`) implement them. Every port
raises only drainctl's own errors (`TemporaryError`: retry later; `PermanentError`: record and move on).

    Source         watches a platform and emits LifecycleEvents; never acts
    Hosts          the host of an instance: drain, count, reset (HostActions)
    Releaser       tells a platform it may proceed with an instance (idempotent)
    SocketGauge    an independent count of a host's open sockets (Prometheus)
    RotationHost   a host that can leave rotation (not ready, still serving): the drain's first step
    Balancer       whether a load balancer still routes new connections to an instance (HAProxy runtime API,
                   GCP backend health, Kubernetes EndpointSlices)
    Journal        every step of every drain, durable before it is acted on
    LeaderElector  of several controllers, only the leader acts
    Listener       hears every journaled transition and every event taken, after the fact (AsyncListener:
                   the same, delivered from its own task)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, runtime_checkable

from controller.core.announcements import Announcement
from controller.core.errors import PermanentError, TemporaryError
from controller.core.models import Disposition, Drain, LifecycleEvent, Transition


class Source(Protocol):
    name: str

    def watch(self) -> AsyncIterator[LifecycleEvent]:
        """Events as they are seen, forever; a transient failure is logged and watching goes on."""
        ...


class HostActions(Protocol):
    """The controller's hands on one host. Errors: `TemporaryError` (retry later) or `PermanentError`."""

    async def drain(self, rate_per_s: float) -> None:
        """Ask the host's app to drain gracefully at `rate_per_s` disconnects per second."""

    async def connections(self) -> int:
        """Established sockets on the service port, counted by the host's kernel."""

    async def reset(self) -> int:
        """Reset every established socket on the service port with a TCP RST; how many were reset."""


@runtime_checkable
class RotationHost(Protocol):
    """A host whose app can leave rotation first (the agent's `POST /v1/not-ready`)."""

    async def not_ready(self) -> bool | None:
        """Turn the app not ready while it keeps serving; whether it is still ready (None: it has no hook)."""
        ...


class Balancer(Protocol):
    """What a load balancer says of an instance (the out-of-rotation step observes it where it can)."""

    name: str

    async def routing(self, instance: str) -> bool | None:
        """Whether new connections may still be sent to `instance`; None when this balancer cannot tell."""
        ...


class Hosts(Protocol):
    def host(self, instance: str) -> HostActions:
        """The host of `instance`; `UnknownHost` when no inventory has it."""


class UnknownHost(PermanentError):
    """The instance is not in the inventory, so the controller has no agent to call."""


class HostUnreachable(TemporaryError):
    """Nothing answers at the host's agent address (connection refused, no route): a blip, or the host is gone."""


class Releaser(Protocol):
    holds: bool
    """Whether the platform waits for a release; False: the drain ends at drained."""

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        """Let the platform proceed for `handles`, this platform's handles of `drain` (`Drain.handles(source)`,
        less those already released; may be empty: a platform that holds without a handle). Our errors only;
        idempotent (a controller that crashed after releasing releases again on resume)."""


class NothingToRelease:
    """Manual drains, operator resets, and any source without a releaser: no platform is waiting."""

    holds = False

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        return None


class SocketGauge(Protocol):
    async def open_sockets(self, instance: str) -> int | None:
        """The app's own count of open sockets; None when there is no fresh sample."""


class Journal(Protocol):
    """The durable record of drain episodes, the events that caused them and their transitions.

    Writes are synchronous: a decision and its journal line happen without an `await` in between. A write
    based on a stale copy of an episode, or a phase change the state machine does not allow, is refused
    (`InvalidTransition`); a read or write that could not be made raises `JournalError` (temporary). Both are
    in `controller.core.errors`, so every implementation raises the same. Opening one (`controller.journal.
    open_journal`) migrates it to the schema this drainctl writes, or refuses it with a `ConfigError`."""

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        """Start an episode for `event`: the episode, the event and the first transition, atomically."""

    def record(
        self, before: Drain, after: Drain, *, step: str, detail: str | None = None,
        event: LifecycleEvent | None = None, disposition: Disposition | None = None,
    ) -> Drain:
        """Journal one step of an episode (and the event that caused it) before it is acted on."""

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        """Remember an event that started nothing, so it is a duplicate the next time."""

    def seen(self, event_id: str) -> bool: ...

    def unfinished(self) -> list[Drain]:
        """Every episode with something left to do: the work a new controller resumes."""

    def latest(self, instance: str) -> Drain | None: ...

    def drains(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        """Most recent episodes first."""

    def transitions(
        self, *, drain_id: int | None = None, after_seq: int | None = None, limit: int = 1000
    ) -> list[Transition]:
        """Journal lines in the order they were written: the first `limit` of one episode and/or with a seq
        above `after_seq`, or else the most recent `limit`. `after_seq` makes the journal an outbox: a listener
        that must not lose a line passes the last seq it delivered and gets every later one, none skipped."""

    def close(self) -> None: ...


@runtime_checkable
class Batching(Protocol):
    """A journal that can group writes into one commit (`SqliteJournal.batch`): the writes inside the block
    are durable only once it has returned, all together; a failed commit (`JournalError`) wrote none of them.
    A journal without it writes (and commits) each one as it comes."""

    def batch(self) -> AbstractContextManager[None]: ...


@runtime_checkable
class Relaxing(Protocol):
    """A journal that can commit a write recording what already happened without waiting for the disk
    (`SqliteJournal.after_the_fact`): durable against a crash of the process at once, against a power loss
    once the next ordinary commit is (it flushes everything before it)."""

    def after_the_fact(self) -> AbstractContextManager[None]: ...


def after_the_fact_of(journal: Journal) -> AbstractContextManager[None]:
    """`journal.after_the_fact()`, or a block whose writes commit as every other."""
    return journal.after_the_fact() if isinstance(journal, Relaxing) else nullcontext()


def batch_of(journal: Journal) -> AbstractContextManager[None]:
    """`journal.batch()`, or a block in which each write commits on its own."""
    return journal.batch() if isinstance(journal, Batching) else nullcontext()


Work = Callable[[], Coroutine[Any, Any, None]]


class LeaderElector(Protocol):
    """Of several controllers sharing one journal or one cluster, only the leader acts."""

    @property
    def leading(self) -> bool:
        """Whether this controller may act now."""

    async def lead(self, work: Work) -> None:
        """Run `work` only while leading (cancelled when leadership is lost), until cancelled."""


class Listener(Protocol):
    """Hears what the engine did (`controller/core/announcements.py`), after it is journaled.

    `hear` is synchronous on purpose: the engine calls it right after the journal write returned, in the same
    stretch of code, so it cannot suspend a pass between its decision and the next step, and what it keeps
    (the metrics) is current as soon as the pass is. It must be quick and must not block. A listener that raises
    is logged (once per kind of error) and ignored: it cannot delay or break a drain."""

    def hear(self, announcement: Announcement) -> None: ...


class AsyncListener(Protocol):
    """A listener that does I/O (webhooks, Kubernetes events): `hear` is a coroutine function.

    The engine never awaits it: each one gets its own bounded queue and delivery task, filled synchronously
    and drained in order. One that hangs falls behind alone (past the bound its announcements are dropped and
    logged); delivery that must not be lost reads the journal's transition sequence as an outbox instead."""

    async def hear(self, announcement: Announcement) -> None: ...
