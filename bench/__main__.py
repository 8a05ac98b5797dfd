"""`make bench`: run every benchmark in turn and print one JSON line each."""

from __future__ import annotations

import json

from bench import capacity


def main() -> None:
    print(json.dumps({"capacity": capacity.run(10_000, 10.0, 30.0)}))


if __name__ == "__main__":
    main()
