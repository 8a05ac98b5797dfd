"""controller/listeners."""
