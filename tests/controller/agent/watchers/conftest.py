"""The fleet the watcher tests start their servers and agents in (torn down, every process, after each test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.harness import Fleet
from tests.support import TEST_BUDGET


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet:
        yield fleet
