"""`drainctl run --config controller.yaml`: parse the config at the edge, then run the daemon (`--check`: only
validate it, controller/daemon/checking.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.config import load_config
from controller.core.errors import ConfigError
from controller.core.logs import LogFormat, LogLevel


def run(
    config: Annotated[Path, typer.Option("--config", help="The controller's YAML config (docs/architecture.md).")],
    log_format: Annotated[LogFormat | None, typer.Option("--log-format", help="text or json (default: log.format "
                                                         "of the config, else text).")] = None,
    log_level: Annotated[LogLevel | None, typer.Option("--log-level", help="debug, info, warning or error "
                                                       "(default: log.level of the config, else info).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the config and exit (0 and `ok`, or one "
                                        "line and 2); start nothing.")] = False,
) -> None:
    """Run the drain controller: watch lifecycle events, drain, verify, reset, release; serve the API."""
    settings = load_config(config)
    if check:
        from controller.daemon.checking import check as check_config

        check_config(settings, config)
        print("ok")
        return
    if settings.api is None:
        raise ConfigError(f"{config}: api: required by `drainctl run` (listen: HOST:PORT, token_file: PATH)")
    from controller.daemon.serving import serve

    log = settings.log.model_copy(update={k: v for k, v in (("format", log_format), ("level", log_level)) if v})
    raise typer.Exit(serve(settings, settings.api, log=log))
