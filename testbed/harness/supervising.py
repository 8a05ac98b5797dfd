"""Child processes that cannot outlive the harness: own session, parent-death signal, bounded teardown.

Every process the harness starts (servers, HAProxy, Prometheus, swarms, the JS peer) goes through `Supervised`:

- `start_new_session=True`, so a Ctrl-C in the terminal reaches only the harness, which then tears down in order,
  and so the whole process group can be signalled at once;
- `PR_SET_PDEATHSIG=SIGKILL`, so the kernel kills the child if the harness dies without tearing down (SIGKILL,
  a crash). The signal fires when the *thread* that started the child exits: start fleets from a thread that
  outlives them (normally the main thread);
- stdout lines that are JSON objects with an `"event"` key are collected so callers can wait for them
  (`wait_event`); everything else, and all of stderr, goes to a log file in the fleet's workdir.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from controller.core.errors import PermanentError, TemporaryError

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_CHARS = 2000


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn asking the kernel to SIGKILL the child when its parent goes away."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class Supervised:
    """One child process: its events, its log, and how to stop it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        read_events: bool = True,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._log: IO[bytes] = log_path.open("ab")
        self._stopped = False
        try:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if read_events else self._log,
                stderr=self._log,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        except OSError as exc:
            self._log.close()
            raise PermanentError(f"{name}: cannot start {argv[0]!r}: {exc.strerror}") from exc
        self._reader: threading.Thread | None = None
        if read_events:
            self._reader = threading.Thread(target=self._read_stdout, name=f"{name}-stdout", daemon=True)
            self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            event = _parse_event(raw)
            if event is None:
                with contextlib.suppress(ValueError):  # the log is closed once the process is torn down
                    self._log.write(raw)
                    self._log.flush()
                continue
            with self._changed:
                self._events.append(event)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Events printed so far, optionally only those called `name`."""
        with self._changed:
            return [e for e in self._events if name is None or e.get("event") == name]

    def wait_event(
        self, name: str, timeout_s: float, *, where: Callable[[dict[str, Any]], bool] | None = None, after: int = 0
    ) -> dict[str, Any]:
        """The first event called `name` (and matching `where`) among those printed after the first `after`.

        Raises PermanentError if the process exits first and TemporaryError when `timeout_s` passes.
        """
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for event in self._events[after:]:
                    if event.get("event") == name and (where is None or where(event)):
                        return event
                if self.popen.poll() is not None and not self._reader_alive():
                    raise PermanentError(
                        f"{self.name} exited with code {self.popen.returncode} before printing {name!r}; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TemporaryError(
                        f"{self.name} printed no {name!r} event within {timeout_s:g} s; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def log_tail(self) -> str:
        with contextlib.suppress(ValueError):
            self._log.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return "(log unavailable)"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        """Send `signum` to the process group (the child and anything it started), if still there."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code, or None if the process is still running after `timeout_s`."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Release the pipe, reader thread and log; call only once the process has exited."""
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


def _parse_event(raw: bytes) -> dict[str, Any] | None:
    line = raw.strip()
    if not line.startswith(b"{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "event" in value else None


def stop_all(processes: Sequence[Supervised], *, grace_s: float = 10.0) -> None:
    """Stop every process: SIGCONT (a stopped one cannot act on SIGTERM), SIGTERM, wait `grace_s`, SIGKILL.

    All processes get each step at once, so teardown takes at most about `grace_s` whatever their number.
    """
    for process in processes:
        process.signal(signal.SIGCONT)
        process.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for process in processes:
        if process.wait_exit(max(0.0, deadline - time.monotonic())) is None:
            process.signal(signal.SIGKILL)
    for process in processes:
        process.wait_exit(10.0)
        process.close()
