"""`drainctl context list | use NAME`: the contexts, and which is current (kubectl's habit).

The file and its shape are controller/oncall/contexts.py's; these commands show it and switch
`current`, nothing else.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from controller.oncall import contexts, views

context = typer.Typer(
    name="context",
    no_args_is_help=True,
    help="Named controllers and token files (the contexts file, like a kubeconfig).",
)
NameArgument = Annotated[
    str, typer.Argument(help="The context commands use when no --context is given.")
]


@context.command("list")
def list_contexts() -> None:
    """Every context of the contexts file, the current one marked with `*`."""
    path, _ = contexts.contexts_path()
    loaded = contexts.load(path)
    table = Table(title=f"contexts in {path}", title_justify="left")
    for column in ("CURRENT", "NAME", "URL", "TOKEN FILE"):
        table.add_column(column)
    for name in sorted(loaded.contexts):
        chosen = contexts.choose(loaded, name, path)
        assert chosen is not None  # a name of the file always resolves
        mark = "*" if name == loaded.current else ""
        table.add_row(mark, name, chosen.url, str(chosen.token_file))
    views.console().print(table)


@context.command("use")
def use(name: NameArgument) -> None:
    """Make NAME the current context of the contexts file (the rest of the file is kept)."""
    path, _ = contexts.contexts_path()
    contexts.use(path, name)
    print(f"current context: {name} ({path})")
