"""A client swarm the harness started: wait until it has joined, stop it, read its report.

The swarm is `drainctl testbed clients` in a child process; it prints `{"event": "joined", "count": N}` once
every client has joined and `{"event": "report", "path": ...}` when its JSON report is written (at the end of
`--duration`, or early on SIGTERM).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from controller.core.errors import PermanentError
from testbed.harness.supervising import Supervised


class SwarmProcess:
    """A running swarm of Phoenix clients."""

    def __init__(self, process: Supervised, report_path: Path, count: int) -> None:
        self.process = process
        self.report_path = report_path
        self.count = count
        self.pid = process.pid

    def __repr__(self) -> str:
        return f"SwarmProcess(count={self.count}, pid={self.pid})"

    def wait_joined(self, timeout_s: float = 120.0) -> None:
        """Wait until every client has joined its topic once."""
        self.process.wait_event("joined", timeout_s)

    def wait_report(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait for the report the swarm writes when it ends, and return it."""
        event = self.process.wait_event("report", timeout_s)
        path = Path(str(event.get("path", self.report_path)))
        self.process.wait_exit(timeout_s)
        try:
            report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PermanentError(f"swarm report {path}: cannot read it: {exc}") from exc
        return report

    def stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """End the run now (SIGTERM) and return the report."""
        self.process.signal(signal.SIGTERM)
        return self.wait_report(timeout_s)
