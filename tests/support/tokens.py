"""The bearer tokens tests give the processes they start, one per role, and writing one to a token file.

Each is distinct, so a test that checks a token never leaks (a log, an error line) cannot pass by accident.
"""

from __future__ import annotations

from pathlib import Path

AGENT_TOKEN = "agent-token-for-tests"
"""What the node agents require (and the controller sends them)."""
APP_TOKEN = "app-token-for-tests"
"""What the app's (the reference server's) admin drain hook requires."""
API_TOKEN = "controller-api-token-for-tests"
"""What the controller's API requires (on-call, the testbed supervisor)."""
ADMIN_TOKEN = "admin-token-for-tests"
"""What the reference server's admin routes require."""


def write_secret(path: Path, text: str) -> Path:
    """`text` in a file only its owner may read, as a token file should be; the path."""
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
