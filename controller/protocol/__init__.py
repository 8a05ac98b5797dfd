"""controller/protocol."""
