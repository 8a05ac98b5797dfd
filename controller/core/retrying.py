"""The one backoff of drainctl: how long to wait before trying again after a temporary failure.

Doubling from `initial_s` (attempt 1 waits `initial_s`, attempt 2 twice that, ...) up to `max_s`, and never
shorter than what the failure asked for (a `TemporaryError`'s `delay_s`: a Retry-After), itself capped at `max_s`.
It is built on tenacity's wait strategies, so a tenacity retry loop (`backoff()`: the Compute API's pages) and a
loop that counts its own failures (`backoff_s()`: the reconciler, the watchers, the Kubernetes watch) wait alike.
"""

from __future__ import annotations

from tenacity import Future, RetryCallState, Retrying, wait_exponential
from tenacity.wait import wait_base

from controller.core.errors import TemporaryError


class WaitHint(wait_base):
    """The failed attempt's `TemporaryError.delay_s` (0 for any other outcome), at most `max_s`."""

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        return min(error.delay_s, self.max_s) if isinstance(error, TemporaryError) else 0.0


class WaitLongest(wait_base):
    """The longest of several waits (tenacity's `+` adds them up)."""

    def __init__(self, *waits: wait_base) -> None:
        self.waits = waits

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(wait(retry_state) for wait in self.waits)


def backoff(*, initial_s: float, max_s: float) -> wait_base:
    """A tenacity `wait=`: doubling from `initial_s` to `max_s`, at least the error's `delay_s` (capped)."""
    return WaitLongest(wait_exponential(multiplier=initial_s, max=max_s), WaitHint(max_s))


def backoff_s(attempt: int, *, initial_s: float, max_s: float, hint_s: float | None = None) -> float:
    """Delay before retry `attempt` (1, 2, ...; 0 counts as 1): `backoff()` for a loop that counts its failures."""
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = max(1, attempt)
    if hint_s is not None:
        hint = TemporaryError("retry after", delay_s=hint_s)
        state.outcome = Future.construct(state.attempt_number, hint, has_exception=True)
    return backoff(initial_s=initial_s, max_s=max_s)(state)
