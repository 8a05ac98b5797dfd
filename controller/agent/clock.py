"""Wall-clock time and waiting, behind a small interface so the fallback's timing has fast tests.

Notices carry deadlines in unix seconds (`not_after`), so the clock is the wall clock, not a monotonic one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
