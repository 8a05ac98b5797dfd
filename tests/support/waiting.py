"""Waiting for a condition in a test: poll it until it holds, fail naming what did not happen.

The bound is generous (the machines are shared); the poll interval is not a synchronisation, the condition
decides. `wait_until` is for synchronous tests, `until` for asyncio ones (the condition may be a coroutine
function, e.g. one that asks a server over HTTP).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

WITHIN_S = 60.0
"""How long a test waits for anything, unless it says otherwise."""
POLL_S = 0.02


def wait_until(condition: Callable[[], T | None], *, within_s: float = WITHIN_S, what: str) -> T:
    """Call `condition` until it returns something truthy, and return that; fail naming `what` after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if value:
            return value
        _fail_after(deadline, within_s, what, value)
        time.sleep(POLL_S)  # poll interval, not synchronisation: the condition decides


async def until(
    condition: Callable[[], T | None] | Callable[[], Awaitable[T | None]], *, within_s: float = WITHIN_S, what: str
) -> T:
    """`wait_until` inside an event loop; `condition` may also be async."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        _fail_after(deadline, within_s, what, value)
        await asyncio.sleep(POLL_S)  # poll interval, not synchronisation: the condition decides


def _fail_after(deadline: float, within_s: float, what: str, last: object) -> None:
    if time.monotonic() > deadline:
        pytest.fail(f"timed out after {within_s:g} s waiting for {what} (last: {last!r})")
