"""The one backoff (controller/core/retrying.py): doubling, capped, never shorter than Retry-After asked."""

from __future__ import annotations

import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from controller.core.errors import TemporaryError
from controller.core.retrying import backoff, backoff_s


def test_the_delay_doubles_from_the_initial_one_up_to_the_cap() -> None:
    assert [backoff_s(n, initial_s=0.5, max_s=5.0) for n in (1, 2, 3, 4, 5, 6, 1000)] == [0.5, 1, 2, 4, 5, 5, 5]


def test_the_delay_is_at_least_the_hint_and_the_hint_is_capped() -> None:
    assert backoff_s(1, initial_s=0.5, max_s=5.0, hint_s=2.0) == 2.0
    assert backoff_s(4, initial_s=0.5, max_s=5.0, hint_s=2.0) == 4.0
    assert backoff_s(1, initial_s=0.5, max_s=5.0, hint_s=60.0) == 5.0


def test_a_tenacity_loop_waits_the_same_and_honours_each_errors_delay() -> None:
    sleeps: list[float] = []
    hints = iter([3.0, 0.0, 0.0, 0.0])

    def flaky() -> None:
        raise TemporaryError("busy", delay_s=next(hints))

    retrying = Retrying(wait=backoff(initial_s=0.5, max_s=5.0), sleep=sleeps.append, stop=stop_after_attempt(4),
                        retry=retry_if_exception_type(TemporaryError), reraise=True)
    with pytest.raises(TemporaryError, match="busy"):
        retrying(flaky)
    assert sleeps == [3.0, 1.0, 2.0]
