"""`drainctl testbed ...` and `drainctl demo`: the local testbed's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testbed.server.command import server
from testbed.swarm.command import clients

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
app.command("server")(server)
app.command("clients")(clients)


def demo(
    budget: Annotated[
        Path | None, typer.Option(help="YAML file: a mapping of timer names to numbers (controller/budget.py).")
    ] = None,
) -> None:
    """Run the local demo scenario and print its report."""
    from testbed.scenarios.demo import load_budget, run_demo

    raise typer.Exit(run_demo(load_budget(budget)))
