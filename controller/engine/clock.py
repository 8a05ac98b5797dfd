"""Time, injected: the engine reads the time only through a `Clock`, so its tests run on a fake one."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds (platform deadlines are wall-clock times)."""


class SystemClock:
    def now(self) -> float:
        return time.time()
