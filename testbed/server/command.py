"""`drainctl testbed server`: parse flags into ServerOptions and run the server until SIGTERM/SIGINT."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from controller.core.budget import Budget
from controller.core.errors import ConfigError
from controller.core.settings import read_token
from testbed.addresses import parse_hostport
from testbed.server.options import Fault, ServerOptions


def server(
    listen: Annotated[str, typer.Option(help="HOST:PORT for WebSocket, health and metrics (port 0: any).")],
    admin: Annotated[str, typer.Option(help="HOST:PORT for the admin routes (port 0: any).")],
    admin_token_file: Annotated[Path, typer.Option(help="File holding the admin bearer token.")],
    name: Annotated[str, typer.Option(help="Server name shown to clients and in metrics.")] = "server",
    fault: Annotated[Fault | None, typer.Option(help="Fault to inject: ignore-drain.")] = None,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds of client silence before the server closes a socket.")
    ] = Budget().server_idle_timeout_s,
) -> None:
    """Run the reference Phoenix Channels server. Prints one JSON line with the bound addresses when ready."""
    from testbed.server.serving import serve

    if not math.isfinite(idle_timeout) or idle_timeout <= 0:
        raise ConfigError(f"--idle-timeout: must be a positive number of seconds, got {idle_timeout:g}")
    options = ServerOptions(
        listen=parse_hostport(listen, option="--listen"),
        admin=parse_hostport(admin, option="--admin"),
        admin_token=read_token(admin_token_file, where="--admin-token-file"),
        name=name,
        fault=fault,
        idle_timeout_s=idle_timeout,
    )
    serve(options)
