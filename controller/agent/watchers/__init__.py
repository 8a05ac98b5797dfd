"""controller/agent/watchers."""
