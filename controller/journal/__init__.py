"""controller/journal."""
