"""The episodes the disruption budget reads: a pool's unfinished ones, kept apart as episodes change."""

from __future__ import annotations

import dataclasses

from controller.core.models import Drain, EventKind, Phase
from controller.engine.episodes import Episodes


def _drain(instance: str, pool: str, phase: Phase = Phase.PENDING) -> Drain:
    return Drain(id=1, instance=instance, pool=pool, source="local", kind=EventKind.TERMINATE, event_id="e",
                 not_after=100.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True, phase=phase)


def _open(episodes: Episodes, pool: str) -> set[str]:
    return {d.instance for d in episodes.open_in(pool)}


def test_a_pools_open_episodes_follow_their_phases_pools_and_removals() -> None:
    episodes = Episodes()
    episodes["A"] = _drain("A", "web")
    episodes["B"] = _drain("B", "web", Phase.VERIFYING)
    episodes["C"] = _drain("C", "api")
    episodes["B"] = dataclasses.replace(episodes["B"], phase=Phase.RELEASED)  # finished: no longer counted
    episodes["C"] = _drain("C", "web")  # its next episode is in another pool
    del episodes["A"]
    assert (_open(episodes, "web"), _open(episodes, "api")) == ({"C"}, set())
    assert set(episodes) == {"B", "C"} and episodes["B"].phase is Phase.RELEASED
    episodes.clear()
    assert len(episodes) == 0 and _open(episodes, "web") == set()
