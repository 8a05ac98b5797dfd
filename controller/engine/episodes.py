"""The latest episode of every instance, with the unfinished ones of each pool kept apart.

What the disruption budget reads at every admission is a pool's unfinished episodes (how many drain, which wait);
finished ones never count. At 10,000 instances the engine holds an episode for every instance ever drained, so
reading all of them at each admission made a storm of 1,000 notices quadratic (about 30 s of CPU in the fleet
benchmark's profile). `Episodes` is the mapping the reconciler keeps, and indexes the unfinished ones by pool
as they are put in, so an admission reads only its pool's open episodes.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, ValuesView

from controller.core.models import Drain


class Episodes(MutableMapping[str, Drain]):
    """instance -> its latest episode; `open_in(pool)`: the pool's unfinished ones."""

    def __init__(self) -> None:
        self._latest: dict[str, Drain] = {}
        self._open: dict[str, dict[str, Drain]] = {}

    def open_in(self, pool: str) -> ValuesView[Drain]:
        """The unfinished episodes of `pool` (a live view)."""
        return self._open.setdefault(pool, {}).values()

    def __getitem__(self, instance: str) -> Drain:
        return self._latest[instance]

    def __setitem__(self, instance: str, drain: Drain) -> None:
        before = self._latest.get(instance)
        if before is not None and before.pool != drain.pool:
            self._open.get(before.pool, {}).pop(instance, None)
        self._latest[instance] = drain
        pool = self._open.setdefault(drain.pool, {})
        if drain.finished:
            pool.pop(instance, None)
        else:
            pool[instance] = drain

    def __delitem__(self, instance: str) -> None:
        drain = self._latest.pop(instance)
        self._open.get(drain.pool, {}).pop(instance, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._latest)

    def __len__(self) -> int:
        return len(self._latest)

    def clear(self) -> None:
        self._latest.clear()
        self._open.clear()
