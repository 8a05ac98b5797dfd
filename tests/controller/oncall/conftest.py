"""`cli`: the `drainctl` entry point (`controller.cli.main`) run in the test's process, for the many short
invocations a test of flags and files makes: the same code as the console script, without paying a child
interpreter's import time for each (seconds apiece on the shared machine). Child processes stay the rule for
what needs a terminal, a signal or a real process (tests/controller/api/stacks.py `drainctl`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

import pytest

from controller.cli import main
from tests.controller.api.stacks import Ran

Cli = Callable[..., Ran]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*args, env={...})`: exit code, stdout and stderr; the caller's DRAINCTL_* variables are dropped."""

    def invoke(*args: str, env: Mapping[str, str] | None = None) -> Ran:
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("DRAINCTL_")]:
                patch.delenv(key)
            for key, value in {"COLUMNS": "200", **(env or {})}.items():
                patch.setenv(key, value)
            patch.setattr(sys, "argv", ["drainctl", *args])
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                main()
            out = capsys.readouterr()
        code = exited.value.code
        return Ran(code if isinstance(code, int) else 0, out.out, out.err)

    return invoke
