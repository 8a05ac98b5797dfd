"""What both simulations' tests share: a scratch directory for their journals and state files."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulation.soak import scratch


@pytest.fixture
def directory() -> Iterator[Path]:
    """A scratch directory for the journals and state files (tmpfs when there is one), with logging off for
    speed (the simulations log every step)."""
    logging.disable(logging.CRITICAL)
    path = scratch()
    try:
        yield path
    finally:
        logging.disable(logging.NOTSET)
        for leftover in path.iterdir():
            leftover.unlink(missing_ok=True)
        path.rmdir()
