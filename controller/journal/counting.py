"""`drainctl_journal_errors_total{operation}`: reads and writes the journal could not make.

A `Journal` wrapper the composition root puts around whatever `open_journal` returned (SQLite today, Postgres
later), so every implementation is counted the same way: each `JournalError` (temporary: the step is not taken
and is retried) is counted by operation, then raised unchanged. An alert (deploy/prometheus/) pages on any:
a controller that cannot journal cannot act.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

from controller.core.errors import JournalError
from controller.core.models import Disposition, Drain, LifecycleEvent, Transition
from controller.core.ports import Journal, after_the_fact_of, batch_of

Result = TypeVar("Result")


class CountedJournal:
    """A `Journal` that counts the `JournalError`s of the one it wraps."""

    def __init__(self, inner: Journal, registry: CollectorRegistry) -> None:
        self.inner = inner
        self.errors = Counter(
            "drainctl_journal_errors", "Journal reads and writes that failed (JournalError), by operation.",
            ["operation"], registry=registry,
        )
        for operation in ("read", "write"):
            self.errors.labels(operation)

    def create(self, draft: Drain, *, event: LifecycleEvent, at: float, step: str, detail: str | None = None) -> Drain:
        return self._counted("write", lambda: self.inner.create(draft, event=event, at=at, step=step, detail=detail))

    def record(
        self, before: Drain, after: Drain, *, step: str, detail: str | None = None,
        event: LifecycleEvent | None = None, disposition: Disposition | None = None,
    ) -> Drain:
        return self._counted("write", lambda: self.inner.record(
            before, after, step=step, detail=detail, event=event, disposition=disposition))

    def log_event(self, event: LifecycleEvent, *, at: float, disposition: Disposition, drain_id: int | None) -> None:
        self._counted("write", lambda: self.inner.log_event(event, at=at, disposition=disposition, drain_id=drain_id))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The inner journal's group commit (a commit that fails counts as a failed write)."""
        try:
            with batch_of(self.inner):
                yield
        except JournalError:
            self.errors.labels("write").inc()
            raise

    def after_the_fact(self) -> AbstractContextManager[None]:
        return after_the_fact_of(self.inner)

    def seen(self, event_id: str) -> bool:
        return self._counted("read", lambda: self.inner.seen(event_id))

    def unfinished(self) -> list[Drain]:
        return self._counted("read", self.inner.unfinished)

    def latest(self, instance: str) -> Drain | None:
        return self._counted("read", lambda: self.inner.latest(instance))

    def drains(self, *, instance: str | None = None, limit: int = 100) -> list[Drain]:
        return self._counted("read", lambda: self.inner.drains(instance=instance, limit=limit))

    def transitions(
        self, *, drain_id: int | None = None, after_seq: int | None = None, limit: int = 1000
    ) -> list[Transition]:
        return self._counted("read", lambda: self.inner.transitions(drain_id=drain_id, after_seq=after_seq,
                                                                     limit=limit))

    def close(self) -> None:
        self.inner.close()

    def _counted(self, operation: str, call: Callable[[], Result]) -> Result:
        try:
            return call()
        except JournalError:
            self.errors.labels(operation).inc()
            raise
