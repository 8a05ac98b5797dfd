"""External programs the end-to-end tests run: found on PATH, else skipped (or failed in CI)."""

from __future__ import annotations

import os
import shutil

import pytest


def need(program: str) -> str:
    """The path of `program`; outside CI its absence skips the test, in CI (`CI=true`) it fails it."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found:
        return found
    message = f"{program} is not installed (`make setup` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
