"""What the engine tells its listeners (metrics, webhooks, Kubernetes events), after the fact.

The engine announces each of these after the journal write it describes has returned; listeners
(`ports.Listener`) hear them in the order they happened. They are reports, never requests: nothing a listener
does changes a drain. Plain frozen dataclasses, no I/O.

    Resumed     the engine's starting state: the latest episode of every instance, as the journal had it
    Journaled   one journal line (a `Transition`, with its `seq`) and the episode before and after it
    Taken       one event the engine received, and what it did with it (its `Disposition`)
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.core.models import Disposition, Drain, LifecycleEvent, Transition


@dataclass(frozen=True)
class Resumed:
    """Announced once, when the engine is built: what it resumed from the journal (no line was written)."""

    drains: tuple[Drain, ...]
    """The latest episode of every instance the engine knows, running or finished."""


@dataclass(frozen=True)
class Journaled:
    """A step of an episode, durably in the journal."""

    line: Transition
    """The journal line itself; `line.seq` orders every line of every episode."""
    before: Drain | None
    """The episode before the step; None for the step that created it."""
    after: Drain
    """The episode as the journal now has it."""
    cause: str | None = None
    """Set when this step fails the drain: what made it fail, as a metric label (`agent_unreachable`, from the
    error's type; `deadline` when no error did)."""


@dataclass(frozen=True)
class Taken:
    """An event the engine received from a source or an operator."""

    event: LifecycleEvent
    disposition: Disposition
    """started, merged, duplicate or stale."""
    drain: Drain | None
    """The episode it started, joined or was judged against (None: a duplicate for a never drained instance)."""


Announcement = Resumed | Journaled | Taken
