"""The soak command: many seeds, or one replayed with its trace.

    python -m tests.simulation.soak --seeds 100000 [--start 0] [--cases fixed|all|none|1,3]
    python -m tests.simulation.soak --seed 1234 [--cases all]      # replay one seed, print its trace
    python -m tests.simulation.soak --fallback --seeds 100000      # the agent's fallback (fallback_soak.py)

Failures are classified by the open case of issue 9 they need (`cases.classify`); the summary gives the seeds,
the failures by case and invariant, and the time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from tests.simulation import cases as known
from tests.simulation import fallback_soak
from tests.simulation.scenarios import generate
from tests.simulation.simulating import Result, simulate


def scratch() -> Path:
    """Where the journals go: tmpfs when there is one (the journal's fsyncs cost nothing there)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))
    directory = base / f"drainctl-sim-{os.getpid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def run_seeds(seeds: range, cases: frozenset[str], directory: Path) -> list[Result]:
    """Every failing result of `seeds`."""
    failures = []
    for seed in seeds:
        result = await simulate(generate(seed), cases=cases, directory=directory)
        if not result.ok:
            failures.append(result)
    return failures


async def replay(seed: int, cases: frozenset[str], directory: Path) -> int:
    scenario = generate(seed)
    print("\n".join(scenario.describe()))
    print(f"cases switched on: {', '.join(sorted(cases)) or 'none'}")
    result = await simulate(scenario, cases=cases, directory=directory, journal_lines=True)
    print("\n".join(result.trace))
    if result.ok:
        print(f"seed {seed}: every invariant held")
        return 0
    print(f"seed {seed}: FAILED ({'; '.join(v.invariant for v in result.violations)}); "
          f"needs: {', '.join(await known.classify(result, directory))}")
    return 1


async def soak(seeds: range, cases: frozenset[str], directory: Path) -> int:
    began = time.perf_counter()
    failures = await run_seeds(seeds, cases, directory)
    elapsed = time.perf_counter() - began
    by_case: defaultdict[str, list[int]] = defaultdict(list)
    by_invariant: Counter[str] = Counter()
    for result in failures:
        for cause in await known.classify(result, directory):
            by_case[cause].append(result.scenario.seed)
        by_invariant.update({v.invariant for v in result.violations})
    print(f"seeds {seeds.start}..{seeds.stop - 1} ({len(seeds)}), cases on: {', '.join(sorted(cases)) or 'none'}: "
          f"{len(failures)} failing, {elapsed:.1f} s ({len(seeds) / elapsed:.0f} seeds/s)")
    for cause, failing in sorted(by_case.items()):
        shown = ", ".join(map(str, failing[:12])) + (" ..." if len(failing) > 12 else "")
        print(f"  {cause}: {len(failing)} seeds: {shown}")
    for invariant, count in by_invariant.most_common():
        print(f"  invariant {invariant}: {count} seeds")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000, help="how many seeds (default 2000)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="replay one seed and print its trace")
    parser.add_argument("--cases", default="fixed", help="cases switched on: fixed (default), all, none, or 1,3,9")
    parser.add_argument("--fallback", action="store_true",
                        help="the agent's fallback simulation (fallback_*.py) instead of the drain path's")
    args = parser.parse_args(argv)
    try:
        cases = known.parse(args.cases)
    except ValueError as exc:
        parser.error(str(exc))
    logging.disable(logging.CRITICAL)
    directory = scratch()
    try:
        if args.fallback:
            return asyncio.run(_fallback(args.seed, range(args.start, args.start + args.seeds), directory))
        if args.seed is not None:
            return asyncio.run(replay(args.seed, cases, directory))
        return asyncio.run(soak(range(args.start, args.start + args.seeds), cases, directory))
    finally:
        for leftover in directory.iterdir():
            leftover.unlink(missing_ok=True)
        directory.rmdir()


async def _fallback(seed: int | None, seeds: range, directory: Path) -> int:
    if seed is not None:
        return await fallback_soak.replay(seed, directory)
    return await fallback_soak.soak(seeds, directory)


if __name__ == "__main__":
    sys.exit(main())
