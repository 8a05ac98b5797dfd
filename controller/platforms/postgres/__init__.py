"""The Postgres platform: leader election for controllers that share a Postgres journal (DESIGN.md §9).

It watches nothing and releases nothing; it contributes only the elector (`leasing.py`), built from the
`leader:` section of kind `postgres` (`config.py`) and the journal it fences (`parts.py`).
"""

from __future__ import annotations

from controller.platforms.postgres.config import PostgresLeaderConfig, PostgresSourceConfig
from controller.platforms.postgres.parts import connect
from controller.plugins import Platform

PLATFORM = Platform(name="postgres", settings=PostgresSourceConfig, connect=connect, leader=PostgresLeaderConfig)
