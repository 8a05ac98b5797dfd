"""One package per platform, each behind the contract of `base` and listed in `registry` (DESIGN.md §8)."""
