"""`drainctl run --check` / `drainctl agent --check` in-process, through the real entry point (`main`).

The tests of the checks and the infra tests that check every rendered config share it: what a user sees is the
exit code and the lines on stdout and stderr, so that is what it returns.
"""

from __future__ import annotations

import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from controller.cli import main


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def drainctl(*args: str) -> Outcome:
    """Run `drainctl ARGS...` as the console script would; its exit code and output."""
    out, err = io.StringIO(), io.StringIO()
    saved, sys.argv = sys.argv, ["drainctl", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    return Outcome(code=code, stdout=out.getvalue(), stderr=err.getvalue())


def check(command: str, config: Path) -> Outcome:
    """`drainctl run --check --config F` (`command` "run") or `drainctl agent --check --config F` ("agent")."""
    return drainctl(command, "--check", "--config", str(config))
