"""CPU and memory of a process from /proc, sampled over a window (Linux only)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    """Share of one core used over the window (100 = one core busy)."""
    rss_mib: float


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_S


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(pids: list[int], window_s: float) -> list[Usage]:
    """Average CPU of each process over the same `window_s`, and its RSS at the end."""
    before, wall_before = [_cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(window_s)
    after, wall_s = [_cpu_seconds(pid) for pid in pids], time.monotonic() - wall_before
    return [Usage(100 * (a - b) / wall_s, _rss_mib(pid)) for pid, b, a in zip(pids, before, after, strict=True)]
