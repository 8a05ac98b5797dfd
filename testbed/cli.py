"""`drainctl testbed ...` and `drainctl demo`: the local testbed's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from controller.core.errors import ConfigError
from controller.core.extras import require
from testbed.agent_faults import agent
from testbed.server.command import server
from testbed.swarm.command import clients

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
app.command("server")(server)
app.command("clients")(clients)
app.command("agent")(agent)


def demo(
    budget: Annotated[
        Path | None, typer.Option(help="YAML file: a mapping of timer names to numbers (controller/core/budget.py).")
    ] = None,
    rotation: Annotated[
        bool, typer.Option("--rotation", help="Instead: an operator's drain and an Azure-like scale-in, out of "
                           "rotation first or not (issue 15).")
    ] = False,
) -> None:
    """Run the local demo scenario and print its report."""
    if rotation:
        from testbed.scenarios.rotating import run_rotation_demo

        if budget is not None:
            raise ConfigError("--budget: applies to the rolling-replacement demo, not to --rotation (its timers "
                              "are fixed: testbed/scenarios/rotating.py)")
        raise typer.Exit(run_rotation_demo())
    require("matplotlib", extra="demo", needed_for="drainctl demo (the timeline picture)")
    from testbed.scenarios.demo import load_budget, run_demo

    raise typer.Exit(run_demo(load_budget(budget)))


def register(drainctl: typer.Typer) -> None:
    """The `drainctl.cli` entry point: add `drainctl testbed ...` and `drainctl demo` to the drainctl command."""
    drainctl.add_typer(app, name="testbed", help="The local testbed: reference server, client swarm, fleet.")
    drainctl.command("demo", help="Run the local demo on this machine and print its report.")(demo)
