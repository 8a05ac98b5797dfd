"""The inventory: which instances exist and in which disruption-budget pool each one is (instance -> pool).

Fed by the config's static `instances:` and by the platforms (a Kubernetes pod joins when it is first seen and
leaves when it is gone). The engine reads it to refuse events for unknown instances and to size each pool's
disruption budget; whoever feeds it owns its entries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping


class Inventory(MutableMapping[str, str]):
    def __init__(self, entries: Mapping[str, str] | None = None) -> None:
        self._pools: dict[str, str] = dict(entries or {})

    def pool_size(self, pool: str) -> int:
        """How many known instances are in `pool` (what a percentage disruption budget counts)."""
        return sum(1 for name in self._pools.values() if name == pool)

    def __getitem__(self, instance: str) -> str:
        return self._pools[instance]

    def __setitem__(self, instance: str, pool: str) -> None:
        self._pools[instance] = pool

    def __delitem__(self, instance: str) -> None:
        del self._pools[instance]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    def learn(self, instance: str, pool: str) -> bool:
        """Add an instance nobody listed yet (an agent's push named it); an entry already there wins.
        Whether it was new."""
        if instance in self._pools:
            return False
        self._pools[instance] = pool
        return True
