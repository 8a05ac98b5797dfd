"""The soak of the agent's fallback simulation, run through the soak command with `--fallback`:

    python -m tests.simulation.soak --fallback --seeds 100000 [--start 0]
    python -m tests.simulation.soak --fallback --seed 1234       # replay one seed, print its trace

The summary gives the seeds, the failing ones by invariant, and the time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from tests.simulation.fallback_scenarios import generate
from tests.simulation.fallback_simulating import Result, simulate


async def run_seeds(seeds: range, directory: Path) -> list[Result]:
    """Every failing result of `seeds`."""
    failures = []
    for seed in seeds:
        result = await simulate(generate(seed), directory=directory)
        if not result.ok:
            failures.append(result)
    return failures


async def replay(seed: int, directory: Path) -> int:
    scenario = generate(seed)
    print("\n".join(scenario.describe()))
    result = await simulate(scenario, directory=directory)
    print("\n".join(result.trace))
    if result.ok:
        print(f"fallback seed {seed}: every invariant held")
        return 0
    print(f"fallback seed {seed}: FAILED ({'; '.join(v.invariant for v in result.violations)})")
    return 1


async def soak(seeds: range, directory: Path) -> int:
    began = time.perf_counter()
    failures = await run_seeds(seeds, directory)
    elapsed = time.perf_counter() - began
    by_invariant: defaultdict[str, list[int]] = defaultdict(list)
    for result in failures:
        for invariant in sorted({v.invariant for v in result.violations}):
            by_invariant[invariant].append(result.scenario.seed)
    print(f"fallback seeds {seeds.start}..{seeds.stop - 1} ({len(seeds)}): {len(failures)} failing, "
          f"{elapsed:.1f} s ({len(seeds) / elapsed:.0f} seeds/s)")
    for invariant, failing in sorted(by_invariant.items()):
        shown = ", ".join(map(str, failing[:12])) + (" ..." if len(failing) > 12 else "")
        print(f"  invariant {invariant}: {len(failing)} seeds: {shown}")
    return 1 if failures else 0
