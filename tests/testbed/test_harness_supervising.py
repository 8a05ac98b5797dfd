"""Supervised children: their events are seen, their failures explained, and none outlives the harness."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.core.errors import PermanentError, TemporaryError
from testbed.harness.supervising import Supervised, stop_all
from testbed.harness.waiting import wait_for

PY = sys.executable


def _gone(pid: int) -> bool:
    """True once `pid` no longer exists (or is a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


Start = Callable[..., Supervised]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Start]:
    processes: list[Supervised] = []

    def start(code: str, name: str = "child") -> Supervised:
        process = Supervised(name, [PY, "-u", "-c", textwrap.dedent(code)], log_path=tmp_path / f"{name}.log")
        processes.append(process)
        return process

    yield start
    stop_all(processes, grace_s=2)


def test_events_are_collected_and_other_output_goes_to_the_log(started: Start) -> None:
    child = started(
        """
        import json, sys, time
        print("plain text line")
        print(json.dumps({"event": "ready", "port": 1234}))
        print("oops", file=sys.stderr)
        time.sleep(60)
        """
    )
    assert child.wait_event("ready", timeout_s=30)["port"] == 1234
    wait_for(lambda: "oops" in child.log_tail(), timeout_s=30, what="stderr in the log")
    assert "plain text line" in child.log_tail()


def test_a_child_that_exits_before_its_event_is_reported_with_its_log(started: Start) -> None:
    child = started("import sys; print('bind failed: address in use', file=sys.stderr); sys.exit(3)")
    with pytest.raises(PermanentError, match=r"exited with code 3[\s\S]*address in use"):
        child.wait_event("ready", timeout_s=60)


def test_waiting_for_an_event_that_never_comes_times_out(started: Start) -> None:
    child = started("import time; time.sleep(60)")
    with pytest.raises(TemporaryError, match=r"no 'ready' event within 0\.5 s"):
        child.wait_event("ready", timeout_s=0.5)


def test_stop_all_ends_stopped_and_stubborn_children(tmp_path: Path) -> None:
    ignore_term = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('{\"event\": \"up\"}')"
    stubborn = Supervised(
        "stubborn", [PY, "-u", "-c", ignore_term + "; time.sleep(120)"], log_path=tmp_path / "stubborn.log"
    )
    stopped = Supervised("stopped", [PY, "-c", "import time; time.sleep(120)"], log_path=tmp_path / "s.log")
    stubborn.wait_event("up", timeout_s=30)
    stopped.signal(signal.SIGSTOP)
    stop_all([stubborn, stopped], grace_s=1)
    assert stubborn.popen.returncode == -signal.SIGKILL
    assert stopped.popen.returncode == -signal.SIGTERM


def test_children_die_with_the_harness_even_when_it_is_killed(tmp_path: Path) -> None:
    # A harness process that starts a child and is then SIGKILLed: no teardown runs, the kernel must act.
    harness = subprocess.Popen(
        [
            PY,
            "-c",
            textwrap.dedent(
                f"""
                import json, sys, time
                from pathlib import Path
                from testbed.harness.supervising import Supervised
                child = Supervised("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"],
                                   log_path=Path({str(tmp_path / 'sleeper.log')!r}), read_events=False)
                print(json.dumps({{"child": child.pid}}), flush=True)
                time.sleep(300)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert harness.stdout is not None
        child_pid = json.loads(harness.stdout.readline())["child"]
        assert not _gone(child_pid)
        harness.kill()
        harness.wait(timeout=30)
        wait_for(lambda: _gone(child_pid), timeout_s=30, what="the orphaned child to be killed")
    finally:
        harness.kill()
        harness.wait(timeout=30)
        if "child_pid" in locals() and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)


def test_wait_for_returns_the_probe_value_and_names_what_timed_out() -> None:
    calls = iter([None, False, 0.0 or None, "value"])
    assert wait_for(lambda: next(calls), timeout_s=30, what="x", interval_s=0.01) == "value"
    with pytest.raises(TemporaryError, match="waiting for the moon"):
        wait_for(lambda: None, timeout_s=0.2, what="the moon", interval_s=0.01)
