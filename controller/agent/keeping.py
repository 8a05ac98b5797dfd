"""The agent's notices on disk: a small JSON file, rewritten atomically on every change.

Why: an agent restarted while a platform notice is open (a crash, an upgrade) must not forget it (its fallback
has to run again, before the same deadline), and must not release it twice (Azure approves with StartRequests
once per EventId). The file holds every notice the book has; released ones are dropped after `keep_released_s`.

Atomic: the new content goes to a temporary file in the same directory, is fsynced, and replaces the old file
with `os.replace`, so a crash leaves the old or the new file, never half of one. An unreadable or malformed file
is logged and set aside (`<name>.corrupt`), and the agent starts with no notices rather than not at all.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from controller.agent.notices import Notice, NoticeState

log = logging.getLogger("drainctl.agent.keeping")

VERSION = 1
KEEP_RELEASED_S = 7 * 24 * 3600.0


class NoticeFile:
    def __init__(
        self, path: Path, *, keep_released_s: float = KEEP_RELEASED_S, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self._keep_released_s = keep_released_s
        self._clock = clock

    def load(self) -> list[Notice]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("notice file %s unreadable (%s); starting without stored notices", self.path, exc.strerror)
            return []
        try:
            raw = json.loads(text)
            notices = [_notice(item) for item in raw["notices"]]
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.error("notice file %s is malformed (%s); moved to %s, starting without stored notices",
                      self.path, exc, aside)
            os.replace(self.path, aside)
            return []
        return notices

    def save(self, notices: Iterable[Notice]) -> None:
        cutoff = self._clock() - self._keep_released_s
        kept = [n.as_json() | {"grace_s": n.grace_s} for n in notices
                if n.state is not NoticeState.RELEASED or (n.released_at or 0.0) >= cutoff]
        body = json.dumps({"version": VERSION, "notices": kept}, indent=1, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _notice(raw: Any) -> Notice:
    return Notice(
        id=str(raw["id"]),
        kind=str(raw["kind"]),
        not_after=float(raw["not_after"]),
        seen_at=float(raw["seen_at"]),
        state=NoticeState(raw["state"]),
        drain_started_by=raw.get("drain_started_by"),
        reset=raw.get("reset"),
        released_at=raw.get("released_at"),
        released_by=raw.get("released_by"),
        source=str(raw.get("source", "api")),
        grace_s=raw.get("grace_s"),
        drain_started_at=raw.get("drain_started_at"),
    )
