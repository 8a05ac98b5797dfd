"""`drainctl testbed clients`: parse flags into SwarmOptions and run the swarm."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from controller.core.errors import ConfigError
from testbed.addresses import parse_ws_url
from testbed.swarm.options import SwarmOptions


def clients(
    url: Annotated[str, typer.Option(help="ws:// URL of the load balancer or server.")],
    count: Annotated[int, typer.Option(help="Number of clients (one token each).")],
    heartbeat_interval: Annotated[float, typer.Option(help="Seconds between heartbeats.")],
    heartbeat_timeout: Annotated[float, typer.Option(help="Seconds without a reply before reconnecting; 0 off.")],
    duration: Annotated[float, typer.Option(help="Seconds to run before writing the report.")],
    report: Annotated[Path, typer.Option(help="Where to write the JSON report.")],
    connect_timeout: Annotated[float, typer.Option(help="Seconds allowed for one connect and join.")] = 15.0,
    connect_rate: Annotated[float, typer.Option(help="Initial connects per second.")] = 500.0,
    token_prefix: Annotated[str, typer.Option(help="Client tokens are PREFIX-<index>.")] = "client",
    topic: Annotated[str, typer.Option(help="Channel topic every client joins.")] = "room:lobby",
) -> None:
    """Run N Phoenix clients in one process; print a summary and write a JSON report at the end."""
    from testbed.swarm.running import run

    for option, value in (("--count", count),):
        if value < 1:
            raise ConfigError(f"{option}: must be at least 1, got {value}")
    for option, number in (
        ("--heartbeat-interval", heartbeat_interval),
        ("--duration", duration),
        ("--connect-timeout", connect_timeout),
        ("--connect-rate", connect_rate),
    ):
        if number <= 0:
            raise ConfigError(f"{option}: must be positive, got {number:g}")
    if heartbeat_timeout < 0:
        raise ConfigError(f"--heartbeat-timeout: must be 0 (off) or positive, got {heartbeat_timeout:g}")
    if 0 < heartbeat_timeout <= heartbeat_interval:
        raise ConfigError(
            f"--heartbeat-timeout ({heartbeat_timeout:g}) must be greater than --heartbeat-interval "
            f"({heartbeat_interval:g}) or 0 (off)"
        )
    directory = report.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise ConfigError(f"--report: directory {str(directory)!r} does not exist or is not writable")
    options = SwarmOptions(
        url=parse_ws_url(url, option="--url"),
        count=count,
        heartbeat_interval_s=heartbeat_interval,
        heartbeat_timeout_s=heartbeat_timeout,
        duration_s=duration,
        report=report,
        connect_timeout_s=connect_timeout,
        connect_rate_per_s=connect_rate,
        token_prefix=token_prefix,
        topic=topic,
    )
    run(options)
