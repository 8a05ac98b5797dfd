"""The `drainctl` command: one entry point for the daemon, the agent, on-call commands and the testbed.

Exit codes (DESIGN.md §6): 0 ok, 1 the operation failed, 2 usage or config error. A user mistake is
reported as one line on stderr, never a traceback.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from controller.agent.command import agent as agent_command
from controller.core.errors import ConfigError, DrainctlError
from controller.daemon.command import run as run_command
from controller.oncall import commands as oncall

app = typer.Typer(
    name="drainctl",
    help="Drain WebSocket servers before their platform deletes them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(agent_command, name="agent")
app.command("run")(run_command)
app.command("drain")(oncall.drain)
app.command("status")(oncall.status)
app.command("history")(oncall.history)
app.command("reset")(oncall.reset)

PLUGINS = "drainctl.cli"
"""Entry-point group of packages that add commands (the testbed adds `drainctl demo` and `drainctl testbed`):
each entry point is a function that takes the Typer app. The controller never imports them itself."""


def _load_plugins() -> None:
    for plugin in entry_points(group=PLUGINS):
        plugin.load()(app)


_load_plugins()


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        print(f"drainctl: {exc}", file=sys.stderr)
        sys.exit(2)
    except DrainctlError as exc:
        print(f"drainctl: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("drainctl: interrupted", file=sys.stderr)
        sys.exit(130)
