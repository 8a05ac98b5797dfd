"""The fencing token shared by a leader elector and the journal it guards (DESIGN.md §9).

The elector sets `epoch` when it wins the lease and clears it when it stops leading; the journal sends it with
every write, and the database refuses a write whose epoch is not the lease's current one. A refusal is
`JournalFenced` and is told to the elector through `refused()`, which steps down at once: a deposed leader
that wakes up (a pause, SIGSTOP, a healed partition) is stopped by the database, not trusted to notice.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.core.errors import JournalError


class JournalFenced(JournalError):
    """The journal refused a write: its epoch is not the lease's current one (another controller leads)."""


class Fence:
    """The epoch this controller writes with (None: it must not write), and what happens when it is refused."""

    def __init__(self, lease: str) -> None:
        self.lease = lease
        """The name of the lease row whose epoch fences the writes."""
        self.epoch: int | None = None
        self.refused_total = 0
        """Writes the database refused since start (metric `drainctl_journal_fenced_writes_total`)."""
        self._listeners: list[Callable[[], None]] = []

    def on_refused(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def refused(self) -> None:
        """A write was fenced: stop writing with this epoch and tell the elector."""
        self.refused_total += 1
        self.epoch = None
        for listener in self._listeners:
            listener()
