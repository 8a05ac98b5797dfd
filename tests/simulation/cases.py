"""The open cases of issue 9 that the simulation can reach, each a switch, and the classification of failures.

A case's faults are played only when the case is switched on. `KNOWN_OPEN` are the cases still open on
`main`: their faults break an invariant today, so `make test` plays without them; delete a line when its fix
lands and the test plays its faults from then on. `classify` names the cases a failing seed needs: the seed
passes when that case alone is switched off.
"""

from __future__ import annotations

from pathlib import Path

from tests.simulation.scenarios import SECOND_SOURCE, STALE_HANDLE, Scenario
from tests.simulation.simulating import Result, simulate

CASES: dict[str, str] = {
    "case 1": "an event merged while a pass waits on an agent call (a tighter deadline, a second handle)",
    "case 2": "the agent answers 503 for a temporary error (drain, count, reset, release)",
    "case 3": "an operator's drain overlapping a platform notice",
    "case 8": "the controller's wall clock steps forward or back",
    "case 9": "sockets the kernel cannot destroy: a reset that reports success and leaves some open",
    "case 10": "an operator's drain retried with the same request id",
    "case 11": "this replica loses the leadership to another on the same journal and wins it back",
    STALE_HANDLE: "beyond the eleven: an older notice with its own handle, delivered after its episode ended",
    SECOND_SOURCE: "beyond the eleven: a second platform's notice (its own handle and deadline) for an instance "
                   "another platform's notice is draining; that platform's release failing or refused",
}
"""Every case whose faults the scenarios draw (the other cases of issue 9 are outside the drain path simulated
here: 4 sources, 5 the agent's fallback, 6 the Kubernetes preStop hold, 7 slow drains judged stuck)."""

KNOWN_OPEN: dict[str, str] = {}
"""Cases still open on main (HEAD), switched off in `make test` (see tests/simulation/test_simulation.py): the
faults of each break an invariant today. Delete a line when the fix lands; `make test` then plays its faults.
Empty since the fixes of cases 1, 2, 3, 11 and the stale handle (what each needed: docs/simulation.md)."""

FIXED: frozenset[str] = frozenset(CASES) - frozenset(KNOWN_OPEN)
"""The cases whose faults `make test` plays."""

BEYOND = "beyond the eleven"


def parse(text: str) -> frozenset[str]:
    """`all`, `fixed` (the default of `make test`), `none`, or a comma-separated list like `1,3,case 9`."""
    if text in (STALE_HANDLE, SECOND_SOURCE):
        return frozenset({text})
    if text in ("all", "fixed", "none"):
        return {"all": frozenset(CASES), "fixed": FIXED, "none": frozenset()}[text]
    names = {f"case {part.strip().removeprefix('case').strip()}" for part in text.split(",") if part.strip()}
    unknown = names - set(CASES)
    if unknown:
        raise ValueError(f"unknown cases {sorted(unknown)} (known: {', '.join(CASES)})")
    return frozenset(names)


def used(scenario: Scenario, cases: frozenset[str]) -> list[str]:
    """The switched-on cases whose faults `scenario` draws."""
    return sorted({s.case for s in scenario.steps if s.case is not None and s.case in cases})


async def classify(result: Result, directory: Path) -> list[str]:
    """The cases a failing seed needs: each case that, switched off alone, makes it pass; else the cases it
    used together (`case 1 + stale handle`) if switching all of them off makes it pass; else `BEYOND`."""
    causes = []
    cases = used(result.scenario, result.cases)
    for case in cases:
        again = await simulate(result.scenario, cases=result.cases - {case}, directory=directory)
        if again.ok:
            causes.append(case)
    if causes:
        return causes
    if not cases or not (await simulate(result.scenario, cases=result.cases - set(cases), directory=directory)).ok:
        return [BEYOND]
    needed = list(cases)
    for case in cases:  # the smallest set found greedily: drop each case the seed still passes without
        rest = [c for c in needed if c != case]
        if (await simulate(result.scenario, cases=result.cases - set(rest), directory=directory)).ok:
            needed = rest
    return [" + ".join(needed)]
