"""The journals behind the `Journal` port (controller/core/ports.py), and the one place that picks one.

The composition root opens whatever `journal:` in controller.yaml names with `open_journal` and hands the
engine a `Journal`; it never names an implementation. A file path is a SQLite journal (`sqlite.py`, the
embedded default); a `postgresql://` (or `postgres://`) URL is the journal two controllers share (DESIGN.md §9,
`postgres.py`). Any other `scheme://` is refused in one line instead of being taken for a file name (which
would give each controller a private SQLite file and let both act). psycopg is imported only for a URL, so a
controller on SQLite runs without it.
"""

from __future__ import annotations

import re
from pathlib import Path

from controller.core.errors import ConfigError
from controller.core.ports import Journal
from controller.journal.sqlite import SqliteJournal

__all__ = ["SqliteJournal", "check_location", "open_journal"]

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):/")
"""`scheme://...` (a `Path` keeps one slash of the two)."""


POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_journal(location: Path | str, *, password_file: Path | None = None) -> Journal:
    """Open (create, migrate) the journal at `location`; `ConfigError`, one line, when it cannot be used.

    `password_file`: the Postgres password (a URL must not hold one); refused for a SQLite file."""
    url = _URL.match(str(location))
    if url is not None and url["scheme"] in POSTGRES_SCHEMES and isinstance(location, str):
        return _postgres(location, password_file)
    if url is not None:
        raise ConfigError(
            f"journal: {str(location)!r}: this drainctl has no {url['scheme']} journal; give a file path (SQLite) "
            "or a postgresql:// URL"
        )
    if password_file is not None:
        raise ConfigError("journal_password_file: only a postgresql:// journal takes a password")
    return SqliteJournal(Path(location))


def check_location(location: Path | str, *, password_file: Path | None = None) -> str:
    """What `open_journal` would refuse before it connects (`drainctl run --check`): `postgres` or `sqlite`.

    Opens nothing and reads no password: a bad scheme, an unparsable URL or a password in it is one line."""
    url = _URL.match(str(location))
    if url is not None and url["scheme"] in POSTGRES_SCHEMES and isinstance(location, str):
        try:
            from psycopg import ProgrammingError
            from psycopg.conninfo import conninfo_to_dict
        except ImportError as exc:
            raise ConfigError(
                "journal: a postgresql:// journal needs psycopg: pip install 'drainctl[postgres]'"
            ) from exc
        try:
            parts = conninfo_to_dict(location)
        except ProgrammingError as exc:
            raise ConfigError(f"journal: not a usable postgresql:// URL: {exc}") from exc
        if "password" in parts:
            raise ConfigError("journal: the URL holds a password; put it in journal_password_file (or PGPASSFILE)")
        return "postgres"
    if url is not None:
        raise ConfigError(f"journal: {str(location)!r}: this drainctl has no {url['scheme']} journal")
    if password_file is not None:
        raise ConfigError("journal_password_file: only a postgresql:// journal takes a password")
    return "sqlite"


def _postgres(url: str, password_file: Path | None) -> Journal:
    try:
        from controller.journal.postgres import PostgresJournal
    except ImportError as exc:
        raise ConfigError(
            "journal: a postgresql:// journal needs psycopg: pip install 'drainctl[postgres]'"
        ) from exc
    return PostgresJournal(url, password_file=password_file)
