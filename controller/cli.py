"""The `drainctl` command: one entry point for the daemon, the agent, on-call commands and the testbed.

Exit codes (DESIGN.md §6): 0 ok, 1 the operation failed, 2 usage or config error. A user mistake is
reported as one line on stderr, never a traceback: click runs without its standalone mode, so its usage errors
reach `main` and are printed as one `drainctl:` line (`--help` stays rich). Shell completion is Typer's.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from typing import Any

import typer

from controller.agent.command import agent as agent_command
from controller.core.errors import ConfigError, DrainctlError
from controller.daemon.command import run as run_command
from controller.oncall import commands as oncall
from controller.oncall import versioning
from controller.oncall.context_command import context as context_command

app = typer.Typer(
    name="drainctl",
    help="Drain WebSocket servers before their platform deletes them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
app.callback()(versioning.root)
app.add_typer(agent_command, name="agent")
app.command("run")(run_command)
app.command("drain")(oncall.drain)
app.command("status")(oncall.status)
app.command("history")(oncall.history)
app.command("reset")(oncall.reset)
app.command("show")(oncall.show)
app.command("cancel")(oncall.cancel)
app.command("version")(versioning.version)
app.add_typer(context_command, name="context")

PLUGINS = "drainctl.cli"
"""Entry-point group of packages that add commands (the testbed adds `drainctl demo` and `drainctl testbed`):
each entry point is a function that takes the Typer app. The controller never imports them itself."""


def _load_plugins() -> None:
    for plugin in entry_points(group=PLUGINS):
        plugin.load()(app)


_load_plugins()


def main() -> None:
    try:
        code = typer.main.get_command(app).main(prog_name="drainctl", standalone_mode=False)
    except _USAGE_ERROR as exc:
        print(f"drainctl: {_usage(exc)}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("drainctl: interrupted", file=sys.stderr)
        sys.exit(130)
    except _CLICK_ERROR as exc:
        print(f"drainctl: {_message(exc)}", file=sys.stderr)
        sys.exit(int(getattr(exc, "exit_code", 1)))
    except ConfigError as exc:
        print(f"drainctl: {exc}", file=sys.stderr)
        sys.exit(2)
    except DrainctlError as exc:
        print(f"drainctl: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("drainctl: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _click_class(name: str) -> type[Exception]:
    """One of click's exception classes, wherever this Typer keeps click (older ones import it, newer ones
    vendor it): found among the ancestors of `typer.BadParameter`, a usage error."""
    return next(kind for kind in typer.BadParameter.__mro__ if kind.__name__ == name)


_USAGE_ERROR = _click_class("UsageError")
_CLICK_ERROR = _click_class("ClickException")


def _message(exc: Exception) -> str:
    format_message: Any = getattr(exc, "format_message", None)
    return " ".join(str(format_message() if callable(format_message) else exc).split())


def _usage(exc: Exception) -> str:
    """`drain: Missing argument 'INSTANCE'. (see `drainctl drain --help`)`: the command, the mistake, the help."""
    context: Any = getattr(exc, "ctx", None)
    path = str(context.command_path) if context is not None else "drainctl"
    command = path.removeprefix("drainctl").strip()
    where = f"{command}: " if command else ""
    return f"{where}{_message(exc)} (see `{path} --help`)"
