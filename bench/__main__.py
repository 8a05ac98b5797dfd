"""`make bench`: run every benchmark in turn and print one JSON line each (docs/performance.md has the results).

`python -m bench fleet [options]` runs only the fleet-scale benchmark (bench/fleet.py).
"""

from __future__ import annotations

import json
import sys

from bench import fleet


def main() -> None:
    if sys.argv[1:2] == ["fleet"]:
        fleet.main(sys.argv[2:])
        return
    from bench import capacity, journal_writes, latency, pacing, preemption, reset  # here: preemption imports the tests

    print(json.dumps({"capacity": capacity.run(10_000, 10.0, 30.0)}), flush=True)
    print(json.dumps({"event_to_drain_start": latency.run(200, 20)}), flush=True)
    print(json.dumps({"reset": reset.run(10_000, 6)}), flush=True)
    print(json.dumps({"drain_pacing": pacing.run(5000, [250.0, 500.0, 1000.0])}), flush=True)
    print(json.dumps({"preemption": preemption.run(5)}), flush=True)
    print(json.dumps({"journal_writes": journal_writes.run(2000)}), flush=True)
    from bench import failover

    print(json.dumps({"failover": failover.run(3)}), flush=True)
    print(json.dumps({"fleet": fleet.run()}), flush=True)


if __name__ == "__main__":
    main()
