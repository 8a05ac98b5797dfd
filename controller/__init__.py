"""drainctl: drain WebSocket servers before their platform deletes them."""

__version__ = "0.1.0"
