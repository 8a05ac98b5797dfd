"""The inventory: which instances exist and in which disruption-budget pool each one is (instance -> pool).

Fed by the config's static `instances:` and by the platforms (a Kubernetes pod joins when it is first seen and
leaves when it is gone). The engine reads it to refuse events for unknown instances and to size each pool's
disruption budget; whoever feeds it owns its entries. Each pool's size is kept as entries come and go, so
`pool_size` (asked at every admission: a storm at 10,000 instances asks it thousands of times) costs O(1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping


class Inventory(MutableMapping[str, str]):
    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._pools: dict[str, str] = dict(entries or {})
        self._sizes: Counter[str] = Counter(self._pools.values())

    def pool_size(self, pool: str) -> int:
        """How many known instances are in `pool` (what a percentage disruption budget counts)."""
        return self._sizes[pool]

    def __getitem__(self, instance: str) -> str:
        return self._pools[instance]

    def __setitem__(self, instance: str, pool: str) -> None:
        before = self._pools.get(instance)
        if before == pool:
            return
        if before is not None:
            self._shrink(before)
        self._pools[instance] = pool
        self._sizes[pool] += 1

    def __delitem__(self, instance: str) -> None:
        self._shrink(self._pools.pop(instance))

    def _shrink(self, pool: str) -> None:
        self._sizes[pool] -= 1
        if not self._sizes[pool]:
            del self._sizes[pool]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    def learn(self, instance: str, pool: str) -> bool:
        """Add an instance nobody listed yet (an agent's push named it); an entry already there wins.
        Whether it was new."""
        if instance in self._pools:
            return False
        self[instance] = pool
        return True
