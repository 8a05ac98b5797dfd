"""Bad input on the command line: one clear line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("drainctl")
DRAINCTL = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-c", "from controller.cli import main; main()"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DRAINCTL, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert lines[0].startswith("drainctl: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (
            "heartbeat_interval_s: 10\nlb_idle_timeout_s: 8\n",
            ["lb_idle_timeout_s (8)", "heartbeat_interval_s (10)", "greater than"],
        ),
        ("drain_deadlin_s: 30\n", ["drain_deadlin_s: unknown key"]),
        ("heartbeat_interval_s: ten\n", ["heartbeat_interval_s: expected a number"]),
        ("- 1\n- 2\n", ["expected a mapping"]),
        ("heartbeat_interval_s: [10\n", ["line 2"]),
    ],
    ids=["broken-invariant", "unknown-key", "wrong-type", "not-a-mapping", "not-yaml"],
)
def test_invalid_budget_file_for_the_demo(tmp_path: Path, content: str, needles: list[str]) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(content, encoding="utf-8")
    _assert_one_line_exit_2(_run("demo", "--budget", str(budget), cwd=tmp_path), "--budget", *needles)


def test_missing_budget_file_for_the_demo(tmp_path: Path) -> None:
    result = _run("demo", "--budget", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    _assert_one_line_exit_2(result, "--budget", "nope.yaml", "No such file")


@pytest.mark.parametrize("url", ["ws://[::1", "ftp://127.0.0.1:80", "ws://127.0.0.1:99999", "127.0.0.1:8000"])
def test_malformed_swarm_url(tmp_path: Path, url: str) -> None:
    result = _run(
        "testbed", "clients", "--url", url, "--count", "1", "--heartbeat-interval", "1", "--heartbeat-timeout", "3",
        "--duration", "1", "--report", str(tmp_path / "report.json"), cwd=tmp_path,
    )
    _assert_one_line_exit_2(result, "--url", url)


def test_missing_admin_token_file(tmp_path: Path) -> None:
    result = _run(
        "testbed", "server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--admin-token-file", str(tmp_path / "missing.token"), cwd=tmp_path,
    )
    _assert_one_line_exit_2(result, "--admin-token-file", "missing.token")
