"""End-to-end fixtures: fleets that are always torn down, and the external programs the tests need.

Outside CI a missing program (haproxy, prometheus, node) skips the tests that need it; in CI (`CI=true`) it
fails them, because `.ci/run` installs everything.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.core.budget import Budget
from testbed.harness import Fleet
from tests.e2e.programs import need

JS_DIR = Path(__file__).parent / "js"
PHOENIX_PEER = JS_DIR / "phoenix_peer.cjs"


@pytest.fixture
def fleets(tmp_path: Path) -> Iterator[Callable[[Budget], Fleet]]:
    """Make fleets (logs kept in the test's tmp_path); every one is torn down when the test ends."""
    need("haproxy")
    need("prometheus")
    made: list[Fleet] = []

    def make(budget: Budget) -> Fleet:
        fleet = Fleet(budget, workdir=tmp_path / f"fleet-{len(made)}")
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()


@pytest.fixture(scope="session")
def phoenix_js() -> Path:
    """The Node script driving the official Phoenix client; runs `npm ci` if `make js-deps` has not."""
    need("node")
    if not (JS_DIR / "node_modules" / "phoenix" / "package.json").exists():
        npm = need("npm")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci in {JS_DIR} failed:\n{result.stderr[-2000:]}")
    return PHOENIX_PEER
