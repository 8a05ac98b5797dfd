"""The journals behind the `Journal` port (controller/core/ports.py), and the one place that picks one.

The composition root opens whatever `journal:` in controller.yaml names with `open_journal` and hands the
engine a `Journal`; it never names an implementation. Today every journal is a SQLite file (`sqlite.py`).
The seam for a journal shared by two controllers (DESIGN.md §9, a `postgresql://` URL) is `open_journal`:
a URL is recognised here and, until its journal exists, refused in one line instead of being taken for a
file name (which would give each controller a private SQLite file and let both act).
"""

from __future__ import annotations

import re
from pathlib import Path

from controller.core.errors import ConfigError
from controller.core.ports import Journal
from controller.journal.sqlite import SqliteJournal

__all__ = ["SqliteJournal", "open_journal"]

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):/")
"""`scheme://...` (a `Path` keeps one slash of the two)."""


def open_journal(location: Path | str) -> Journal:
    """Open (create, migrate) the journal at `location`; `ConfigError`, one line, when it cannot be used."""
    url = _URL.match(str(location))
    if url is not None:
        raise ConfigError(
            f"journal: {str(location)!r}: this drainctl has no {url['scheme']} journal; give a file path (SQLite)"
        )
    return SqliteJournal(Path(location))
