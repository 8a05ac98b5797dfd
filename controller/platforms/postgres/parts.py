"""The Postgres elector from `leader:` (kind: postgres) and the journal it fences.

The journal must be the Postgres one (`journal: postgresql://...`): the lease row lives in its database, and
the elector hands its epoch to the journal's fence. With a SQLite journal each controller would have its own
record, so the combination is refused in one line. psycopg is imported only here, when the section is there,
so a controller on SQLite runs without it installed.
"""

from __future__ import annotations

from controller.core.errors import ConfigError
from controller.journal.counting import CountedJournal
from controller.platforms.postgres.config import PostgresLeaderConfig, PostgresSourceConfig
from controller.plugins import Context, Parts


def connect(settings: PostgresSourceConfig, context: Context) -> Parts:
    leader = context.leader
    if not isinstance(leader, PostgresLeaderConfig):
        return Parts()
    from controller.journal.postgres import PostgresJournal  # needs psycopg: only with this section
    from controller.platforms.postgres.leasing import PostgresElector

    journal = context.journal
    if isinstance(journal, CountedJournal):  # the composition root counts every journal's errors
        journal = journal.inner
    if not isinstance(journal, PostgresJournal):
        raise ConfigError("leader: kind postgres needs the shared journal: journal: postgresql://...")
    fence = journal.fenced_by(leader.name)
    elector = PostgresElector(journal.url, journal.connection_settings, fence, leader)
    return Parts(leader=elector, close=elector.aclose)
