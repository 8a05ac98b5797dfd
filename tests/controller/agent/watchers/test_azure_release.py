"""The agent's own approval of an Azure scheduled event (StartRequests), against made-up IMDS answers."""

from __future__ import annotations

import httpx

from controller.agent.notices import Notice
from controller.agent.watchers.azure import AzureRelease, ImdsUnavailable, ScheduledEventsClient
from tests.support.tasks import async_test

START_S = 1_700_000_000.0


class SleepRecorder:
    """A clock whose time moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now_s = START_S
        self.slept: list[float] = []

    def now(self) -> float:
        return self.now_s

    def monotonic(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now_s += seconds


def _imds(statuses: list[int], seen: list[int]) -> ScheduledEventsClient:
    def answer(request: httpx.Request) -> httpx.Response:
        status = statuses.pop(0) if statuses else 200
        seen.append(status)
        return httpx.Response(status, json={} if status == 200 else {"error": "Internal server error"},
                              headers={"Retry-After": "1"} if status == 503 else {})

    return ScheduledEventsClient("http://169.254.169.254", timeout_s=1.0, transport=httpx.MockTransport(answer))


def _notice(not_after_in_s: float = 60.0) -> Notice:
    return Notice(id="evt-1", kind="terminate", not_after=START_S + not_after_in_s, seen_at=START_S, source="azure")


@async_test
async def test_an_imds_5xx_on_approval_is_retried_and_the_event_approved() -> None:
    """issue 9, case 2: one IMDS 5xx (or 503 with Retry-After) on StartRequests must not give the release up:
    the agent retries it with backoff and the event is approved."""
    seen: list[int] = []
    clock = SleepRecorder()
    client = _imds([500, 503], seen)
    try:
        await AzureRelease(client, clock=clock).release(_notice())
    finally:
        await client.aclose()

    assert seen == [500, 503, 200]
    assert clock.slept and clock.slept[-1] >= 1.0, "the Retry-After of the 503 is honoured"


@async_test
async def test_an_imds_that_stays_down_is_raised_as_temporary_before_notbefore() -> None:
    """issue 9, case 2: the agent's retries are bounded (never past NotBefore, nor longer than its caller waits):
    then the failure is raised as temporary, so the controller (503) or the fallback retries it."""
    seen: list[int] = []
    clock = SleepRecorder()
    client = _imds([500] * 100, seen)
    try:
        try:
            await AzureRelease(client, clock=clock, retry_for_s=2.0).release(_notice(not_after_in_s=60.0))
        except ImdsUnavailable:
            pass
        else:
            raise AssertionError("an IMDS that stays down must be raised as temporary")
    finally:
        await client.aclose()

    assert len(seen) >= 2 and clock.now_s <= START_S + 2.0
