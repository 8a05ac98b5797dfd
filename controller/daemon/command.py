"""`drainctl run --config controller.yaml`: parse the config at the edge, then run the daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.config import load_config
from controller.core.errors import ConfigError


def run(
    config: Annotated[Path, typer.Option("--config", help="The controller's YAML config (docs/architecture.md).")],
) -> None:
    """Run the drain controller: watch lifecycle events, drain, verify, reset, release; serve the API."""
    settings = load_config(config)
    if settings.api is None:
        raise ConfigError(f"{config}: api: required by `drainctl run` (listen: HOST:PORT, token_file: PATH)")
    from controller.daemon.serving import serve

    raise typer.Exit(serve(settings, settings.api))
