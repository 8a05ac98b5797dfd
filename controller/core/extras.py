"""Optional dependencies (install extras), checked before the code that needs them runs.

The base install (controller, agent, CLI) stays light: the Kubernetes client, google-auth, azure-identity,
psycopg and matplotlib are extras (`pip install 'drainctl[kubernetes]'`, `[gcp]`, `[azure]`, `[postgres]`,
`[demo]`). A missing one is a `ConfigError`: one
`drainctl:` line naming the extra to install, exit 2, never an ImportError traceback.
"""

from __future__ import annotations

import importlib.util

from controller.core.errors import ConfigError


def require(module: str, *, extra: str, needed_for: str) -> None:
    """Refuse, in one line, to go on without `module` (from the extra `extra`)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing too
        found = False
    if not found:
        raise ConfigError(
            f"{needed_for} needs the Python package {module!r}, which is not installed: "
            f"pip install 'drainctl[{extra}]'"
        )
