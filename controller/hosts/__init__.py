"""controller/hosts."""
