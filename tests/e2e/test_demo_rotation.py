"""`drainctl demo --rotation` (issue 15, item 4): the operator's drain and the Azure-like scale-in with the
out-of-rotation step refuse no reconnect; the demo says OK (exit 0) only then, and refuses `--budget`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testbed.scenarios.rotating import run_rotation_demo
from tests.e2e.programs import need

pytestmark = pytest.mark.e2e


def test_the_rotation_demo_passes_when_the_step_refuses_no_reconnect(capsys: pytest.CaptureFixture[str]) -> None:
    need("haproxy")
    assert run_rotation_demo(clients=300) == 0
    out = capsys.readouterr().out
    assert "OK with the step no reconnect was refused" in out
    assert "Azure-like scale-in" in out and "before" in out


def test_the_rotation_demo_takes_no_budget_file() -> None:
    result = subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", "demo", "--rotation",
                             "--budget", "x.yaml"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("drainctl: --budget: applies to the rolling")
