"""`drainctl --version` and `drainctl version`: the installed package's version, from its metadata.

The root callback also carries the `drainctl` command's own help and the global `--context` option (read by
controller/oncall/connecting.py from the root context's parameters); it does nothing else.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated

import typer

from controller.oncall.connecting import ContextOption

PACKAGE = "drainctl"


def installed() -> str:
    """The installed drainctl's version; `unknown` when it runs from a tree that was never installed."""
    try:
        return package_version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def version() -> None:
    """Print drainctl's version."""
    print(f"drainctl {installed()}")


def _eager(value: bool) -> None:
    if value:
        version()
        raise typer.Exit()


def root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_eager, is_eager=True, help="Print drainctl's version and exit.")
    ] = False,
    context: ContextOption = None,
) -> None:
    """Drain WebSocket servers before their platform deletes them."""
