"""The journal tests' fixtures: a real PostgreSQL (tests/support/postgres.py) beside SQLite files.

`open_store` is parametrized over both implementations, so a test of the `Journal` port runs against each;
the Postgres one skips (fails in CI) when the server is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.core.ports import Journal
from controller.journal.sqlite import SqliteJournal
from tests.support.postgres import PostgresServer

OpenStore = Callable[[], Journal]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Open (again) the test's journal: a SQLite file, or a fresh Postgres database; all closed at the end."""
    opened: list[Journal] = []

    if request.param == "sqlite":
        def make() -> Journal:
            return SqliteJournal(tmp_path / "journal.db")
    else:
        url: str = request.getfixturevalue("postgres_url")
        server: PostgresServer = request.getfixturevalue("postgres_server")

        def make() -> Journal:
            from controller.journal.postgres import PostgresJournal
            return PostgresJournal(url, password_file=server.password_file)

    def tracked() -> Journal:
        opened.append(make())
        return opened[-1]

    yield tracked
    for store in opened:
        store.close()
