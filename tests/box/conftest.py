"""Box fixtures: a bridge and VMs that are always torn down, skipped (never silently) without root or `ip`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.box.vm import Bridge, Machines, prerequisites


def need_box() -> None:
    """Skip with the reason outside CI; in CI (`CI=true`, root) a missing prerequisite fails the test."""
    reason = prerequisites()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def box_root() -> Path:
    """A directory every VM user can traverse (pytest's tmp_path is 0700 for root): NOTIFY and systemctl
    sockets live there."""
    root = Path(tempfile.mkdtemp(prefix="drainctl-box-"))
    os.chmod(root, 0o755)
    return root


@pytest.fixture
def machines() -> Iterator[Machines]:
    """A bridge with the link-local service address."""
    need_box()
    root = box_root()
    tag = f"{os.getpid() % 100000:05d}"
    made = Machines(root, Bridge.create(f"bxt{tag}", ["169.254.169.254/32"]))
    try:
        yield made
    finally:
        made.close()
        if not os.environ.get("DRAINCTL_BOX_KEEP"):
            shutil.rmtree(root, ignore_errors=True)
