"""A randomized fault simulation of the drain path (issue 9, Build item 2), deterministic by seed.

The real engine, SQLite journal, budget and release code run over fakes of the agents and the platforms, on a
fake clock; faults are injected at every boundary and the invariants (`invariants.py`) are checked after every
step. `scenarios.py` draws a scenario from a seed, `simulating.py` plays it, `cases.py` names the open cases
of issue 9 whose faults are switched off until they are fixed, `soak.py` is the command for long runs:

    python -m tests.simulation.soak --seeds 100000          # any number of seeds
    python -m tests.simulation.soak --seed 1234             # replay one, printing its trace

`fallback_*.py` is the same for the agent's local fallback (Build item 3): the real `NodeAgent`, notice book,
state file and `run_fallback` on a clock that sleeps in simulated time (`python -m tests.simulation.soak
--fallback`, docs/simulation.md).
"""
