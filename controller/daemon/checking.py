"""`drainctl run --check`: what the daemon would refuse at start, found without starting it (like `nginx -t`).

The loader already parses controller.yaml and reads its token files; this adds the refusals that otherwise
come only when the daemon opens its parts (no `api:`, an unusable journal URL, a Postgres leader on a SQLite
journal). It opens no socket and no database, so a boot script or a test can run it on a rendered config.
"""

from __future__ import annotations

from pathlib import Path

from controller.config import ControllerConfig
from controller.core.errors import ConfigError
from controller.journal import check_location


def check(settings: ControllerConfig, path: Path) -> None:
    """Raise the `ConfigError` `drainctl run` would raise for this config before it acts; else return."""
    if settings.api is None:
        raise ConfigError(f"{path}: api: required by `drainctl run` (listen: HOST:PORT, token_file: PATH)")
    try:
        kind = check_location(settings.journal, password_file=settings.journal_password_file)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if getattr(settings.leader, "kind", None) == "postgres" and kind != "postgres":
        raise ConfigError(f"{path}: leader: kind postgres needs the shared journal: journal: postgresql://...")
