"""drainctl's own error types; dependency errors are converted to these at each boundary.

    DrainctlError
    ├── ConfigError                 bad user input: a config file, a flag, a budget (CLI exit code 2)
    │   └── BudgetError             a timer budget that breaks an invariant, an unknown key, a wrong type
    ├── TemporaryError(delay_s)     worth retrying after `delay_s` (network blips, 429/5xx, timeouts)
    │   └── JournalError            the journal could not be read or written; the step is not taken
    └── PermanentError              retrying will not help; record the reason and move on
        └── InvalidTransition       a phase change the state machine forbids, or a write from a stale copy

The journal's errors live here, not beside one journal, so every implementation (SQLite today, Postgres
later) raises the same ones and the engine catches them without importing any.

Callers catch these, never httpx's, sqlite3's or aiohttp's.
"""

from __future__ import annotations


class DrainctlError(Exception):
    """Base of every error drainctl raises on purpose."""


class ConfigError(DrainctlError):
    """The user gave drainctl something it cannot use; the message says what and where."""


class BudgetError(ConfigError):
    """A timer budget that is malformed or breaks one of its invariants."""


class TemporaryError(DrainctlError):
    """A failure that may clear up: retry after `delay_s` seconds."""

    def __init__(self, message: str, *, delay_s: float = 1.0) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(DrainctlError):
    """A failure that retrying will not fix."""


class JournalError(TemporaryError):
    """The journal could not be read or written; the step it would have recorded is not taken."""


class InvalidTransition(PermanentError):
    """A phase change the state machine does not allow, or a write based on a stale copy of the episode."""
