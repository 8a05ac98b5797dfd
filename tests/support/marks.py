"""Marks for tests that need what an ordinary user does not have."""

from __future__ import annotations

import os

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="resetting sockets (ss -K) needs CAP_NET_ADMIN; runs as root and in CI",
)
"""Socket destroy and network namespaces: skipped outside CI when not root; in CI (`CI=true`) it must run."""
