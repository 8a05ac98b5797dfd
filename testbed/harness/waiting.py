"""Waiting for a condition with a deadline: the only way the harness and its tests wait (never fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from controller.core.errors import PermanentError, TemporaryError

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.1
) -> T:
    """Call `probe` until it returns something other than None/False, and return that.

    A PermanentError from `probe` ends the wait at once; any other error counts as "not yet" (a process that
    is still starting fails in many ways). Raises TemporaryError naming `what` and the last such error when
    `timeout_s` passes.
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except PermanentError:
            raise
        except Exception as exc:
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TemporaryError(f"timed out after {timeout_s:g} s waiting for {what}{detail}")
        time.sleep(interval_s)
