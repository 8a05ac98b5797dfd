"""Open sockets per server over time, counted by the kernel: the demo's timeline.

The servers' own gauge cannot show the incident: a SIGSTOPped server answers no scrape, yet its sockets are
exactly the ones clients are stuck on. The kernel still holds them, so a background thread asks `ss` (the
same sock_diag count the node agent uses) for every established socket on the servers' ports a few times a
second and keeps one sample per tick: (unix seconds, {server: count}).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.core.errors import PermanentError

INTERVAL_S = 0.25


@dataclass(frozen=True)
class Sample:
    at: float
    """Unix seconds."""
    counts: dict[str, int]
    """Established sockets per server name (its WebSocket port)."""


@dataclass
class SocketSampler:
    """Samples `ports` (port -> server name) every `interval_s` until `stop()`."""

    ports: Mapping[int, str]
    interval_s: float = INTERVAL_S
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> SocketSampler:
        self.samples.append(self.sample())  # fails loudly here, on the caller's thread, if `ss` cannot run
        self._thread = threading.Thread(target=self._run, name="socket-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.samples

    def latest(self, server: str) -> int:
        """The last count of `server` (0 before the first sample)."""
        return self.samples[-1].counts.get(server, 0) if self.samples else 0

    def sample(self) -> Sample:
        """One count of every port now."""
        terms = " or ".join(f"sport = :{port}" for port in self.ports)
        try:
            result = subprocess.run(["ss", "-Htn", "state", "established", f"( {terms} )"], capture_output=True,
                                    text=True, timeout=30, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PermanentError(f"ss: cannot count sockets: {exc}") from exc
        by_port = Counter(_local_port(line) for line in result.stdout.splitlines() if line.strip())
        return Sample(time.time(), {name: by_port.get(port, 0) for port, name in self.ports.items()})

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.sample())
            except PermanentError:
                continue  # one failed count is a gap in the picture, not a failed demo


def _local_port(line: str) -> int:
    """`ss -Htn state established` lines: Recv-Q Send-Q Local:Port Peer:Port."""
    local = line.split()[2]
    return int(local.rpartition(":")[2])
