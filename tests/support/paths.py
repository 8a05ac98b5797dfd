"""Where the repository is, for tests that read what it ships (deploy/, docs/, the controller's sources)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
