"""The backstop's pace: reads start evenly spaced at the configured rate, never more in flight than allowed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from controller.hosts.client import Notice
from controller.platforms.notices.pacing import Pace
from controller.platforms.notices.watching import LocalSource
from tests.support import until
from tests.support.tasks import async_test


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@async_test
async def test_turns_are_handed_out_one_gap_apart_to_concurrent_callers() -> None:
    clock = FakeTime()
    pace = Pace(4.0, now=lambda: clock.now, sleep=clock.sleep)
    starts = []

    async def caller() -> None:
        await pace.wait()
        starts.append(clock.now)

    for _ in range(5):
        await caller()
    assert starts == [100.0, 100.25, 100.5, 100.75, 101.0]


@async_test
async def test_an_idle_spell_does_not_bank_a_burst() -> None:
    clock = FakeTime()
    pace = Pace(2.0, now=lambda: clock.now, sleep=clock.sleep)
    await pace.wait()
    clock.now += 60.0  # nothing asked for a minute
    starts = []
    for _ in range(3):
        await pace.wait()
        starts.append(clock.now)
    assert starts == [160.0, 160.5, 161.0], "after the idle minute, still one turn per 0.5 s"


class SlowAgent:
    """Records when each read starts and how many are in flight; answers once `gate` opens."""

    def __init__(self, log: list[float], flight: list[int], gate: asyncio.Event) -> None:
        self._log, self._flight, self._gate = log, flight, gate

    async def notices(self) -> Sequence[Notice]:
        self._log.append(asyncio.get_running_loop().time())
        self._flight[0] += 1
        self._flight[1] = max(self._flight[1], self._flight[0])
        try:
            await self._gate.wait()
        finally:
            self._flight[0] -= 1
        return []


@async_test
async def test_a_round_never_starts_reads_faster_than_its_rate() -> None:
    gate = asyncio.Event()
    gate.set()
    starts: list[float] = []
    flight = [0, 0]
    agents = {f"A{i}": SlowAgent(starts, flight, gate) for i in range(20)}
    await LocalSource(agents, poll_interval_s=30.0, max_in_flight=8, rate_per_s=200.0).poll()
    assert len(starts) == 20
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 1 / 200 - 1e-3, f"reads started closer than the rate allows: {min(gaps):.4f} s"


@async_test
async def test_a_round_keeps_at_most_max_in_flight_reads_on_the_wire() -> None:
    gate = asyncio.Event()
    starts: list[float] = []
    flight = [0, 0]
    agents = {f"A{i}": SlowAgent(starts, flight, gate) for i in range(30)}
    source = LocalSource(agents, poll_interval_s=30.0, max_in_flight=4, rate_per_s=1000.0)
    round_ = asyncio.create_task(source.poll())
    await until(lambda: len(starts) >= 4, what="the first four reads")
    for _ in range(50):  # turns of the loop in which a fifth read would start if the bound did not hold
        await asyncio.sleep(0.001)
    assert flight[0] == 4 and len(starts) == 4
    gate.set()
    await round_
    assert len(starts) == 30 and flight[1] == 4


class Held:
    def __init__(self, *notices: Notice) -> None:
        self.held = list(notices)

    async def notices(self) -> Sequence[Notice]:
        return self.held


@async_test
async def test_an_agent_that_appears_after_a_round_is_read_before_the_next_one() -> None:
    agents: dict[str, Held] = {}
    source = LocalSource(agents, poll_interval_s=3600.0, rate_per_s=100.0)
    events = aiter(source.watch())
    first = asyncio.create_task(anext(events))  # the first round finds nobody (discovery has not answered)
    agents["new"] = Held(Notice(id="n1", kind="terminate", not_after=100.0, state="open", drain_started_by=None,
                                reset=None, released_at=None))
    event = await asyncio.wait_for(first, timeout=60)
    assert (event.instance, event.ref) == ("new", "n1"), "read within seconds, not after the hour's interval"
