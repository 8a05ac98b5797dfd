"""Sources watch for lifecycle events and emit `LifecycleEvent`s; they never act (DESIGN.md §4).

A watching source is an async iterator of events (`Source.watch`); the engine consumes every enabled one.
Ids are deterministic, so a source may emit the same event again (after a restart, a re-poll) harmlessly.
The manual source is push-based: the API turns an operator's request into an event and submits it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from controller.models import LifecycleEvent


class Source(Protocol):
    name: str

    def watch(self) -> AsyncIterator[LifecycleEvent]:
        """Events as they are seen, forever; a transient failure is logged and watching goes on."""
        ...
