"""`drainctl agent --config agent.yaml`: parse the config at the edge, then run the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.agent.config import load_settings


def agent(
    config: Annotated[Path, typer.Option("--config", help="The agent's YAML config (see docs/agent.md).")],
) -> None:
    """Run the node agent: drain, count and reset this host's sockets; local fallback on platform notices."""
    from controller.agent.serving import serve

    serve(load_settings(config))
