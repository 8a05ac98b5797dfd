"""The inventory's per-pool sizes (what a percentage disruption budget counts) follow every change."""

from __future__ import annotations

import random

from controller.core.inventory import Inventory


def _counted(inventory: Inventory, pool: str) -> int:
    return sum(1 for name in inventory if inventory[name] == pool)


def test_pool_sizes_follow_additions_moves_removals_and_learning() -> None:
    inventory = Inventory({"a": "web", "b": "web", "c": "api"})
    inventory["d"] = "api"
    inventory["a"] = "api"  # moved to another pool
    inventory["b"] = "web"  # set again to the same pool: counted once
    del inventory["c"]
    assert inventory.learn("e", "web") and not inventory.learn("e", "api")
    inventory.pop("d")
    assert (inventory.pool_size("web"), inventory.pool_size("api"), inventory.pool_size("none")) == (2, 1, 0)


def test_pool_sizes_match_a_count_after_a_random_churn() -> None:
    rng = random.Random(7)
    inventory = Inventory()
    pools = ["p0", "p1", "p2"]
    for _ in range(2000):
        name = f"i{rng.randrange(200)}"
        if rng.random() < 0.3 and name in inventory:
            del inventory[name]
        else:
            inventory[name] = rng.choice(pools)
    assert [inventory.pool_size(p) for p in pools] == [_counted(inventory, p) for p in pools]
