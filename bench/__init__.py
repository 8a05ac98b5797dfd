"""Benchmarks: speed and capacity figures, never asserted in tests. Results go to docs/ with the command."""
