"""Where the controller is and the token that proves who we are: `--controller`, `--token-file`,
`--context`.

Each has an environment variable (`DRAINCTL_CONTROLLER`, `DRAINCTL_TOKEN_FILE`,
`DRAINCTL_CONTEXT`); `--controller` and `--token-file` have a default that fits a controller VM. A
context (controller/oncall/contexts.py) supplies both from the contexts file: the one `--context`
names, else the file's `current`. What is typed beats what is in the environment, which beats the
file's `current`; at the same level an explicit `--controller` or `--token-file` beats the
context's. Problems are one line naming the flag, variable or file, never the token itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from controller.core.errors import ConfigError
from controller.core.settings import http_url, read_token
from controller.oncall import contexts
from controller.oncall.client import ControllerClient, ControllerRefusedToken, ControllerUnreachable

DEFAULT_CONTROLLER = "http://127.0.0.1:9300"
DEFAULT_TOKEN_FILE = Path("/etc/drainctl/api.token")
URL_FLAGS = "--controller or DRAINCTL_CONTROLLER"
TOKEN_FLAGS = "--token-file or DRAINCTL_TOKEN_FILE"

ControllerOption = Annotated[
    str,
    typer.Option("--controller", envvar="DRAINCTL_CONTROLLER", help="The controller's API base URL."),
]
TokenFileOption = Annotated[
    Path,
    typer.Option("--token-file", envvar="DRAINCTL_TOKEN_FILE",
                 help="File holding the controller's API token."),
]
ContextOption = Annotated[
    str | None,
    typer.Option("--context", envvar="DRAINCTL_CONTEXT",
                 show_default="the contexts file's current",
                 help="The named controller and token file to use, from the contexts file "
                      "($DRAINCTL_CONTEXTS or ~/.config/drainctl/contexts.yaml)."),
]
_RANKS = {"COMMANDLINE": 3, "PROMPT": 3, "ENVIRONMENT": 2, "DEFAULT_MAP": 2}
"""How explicitly a value was given (click's parameter sources); a default ranks 0."""
CURRENT_RANK = 1
"""The contexts file's `current`: above a default, below anything given."""


class _Parsed(Protocol):
    """A parsed command line (click's context, which Typer's extends): values and their sources."""

    params: dict[str, Any]

    def get_parameter_source(self, name: str) -> object: ...


@dataclass(frozen=True)
class Target:
    """The controller a command talks to, and where each half came from (for error messages)."""

    url: str
    token_file: Path
    url_from: str
    token_from: str
    context: contexts.Chosen | None = None


@contextmanager
def connect(ctx: typer.Context) -> Iterator[ControllerClient]:
    """A client of the controller the command names; refusals say which setting to look at."""
    target = resolve(ctx)
    client = ControllerClient(controller_url(target), _token(target))
    try:
        yield client
    except ControllerRefusedToken as exc:
        raise ControllerRefusedToken(
            f"{exc}: check the token in {str(target.token_file)!r} ({target.token_from})"
        ) from exc
    except ControllerUnreachable as exc:
        raise ControllerUnreachable(
            f"{exc} (is `drainctl run` running there? {target.url_from})"
        ) from exc
    finally:
        client.close()


def resolve(ctx: typer.Context) -> Target:
    """The `--controller` and `--token-file` of the command `ctx` runs, merged with its context."""
    url: str = ctx.params["controller"]
    token_file: Path = ctx.params["token_file"]
    root = ctx.find_root()
    name: str | None = root.params.get("context")
    context_rank = _rank(root, "context") if name is not None else CURRENT_RANK
    url_rank, token_rank = _rank(ctx, "controller"), _rank(ctx, "token_file")
    chosen = _chosen(name) if min(url_rank, token_rank) < context_rank else None
    if chosen is None:
        return Target(url, token_file, URL_FLAGS, TOKEN_FLAGS)
    where = f"context {chosen.name!r} in {chosen.source}"
    url_wins, token_wins = url_rank >= context_rank, token_rank >= context_rank
    return Target(
        url if url_wins else chosen.url,
        token_file if token_wins else chosen.token_file,
        URL_FLAGS if url_wins else where,
        TOKEN_FLAGS if token_wins else where,
        chosen,
    )


def controller_url(target: Target) -> str:
    """The URL, checked (a context's was checked when its file was read)."""
    try:
        return http_url(target.url)
    except ValueError as exc:
        raise ConfigError(f"--controller: {exc}") from exc


def _chosen(name: str | None) -> contexts.Chosen | None:
    """Context `name` (an error if there is none, or no file), else the current one if any."""
    path, named = contexts.contexts_path()
    if name is None and not named and not path.exists():
        return None
    try:
        return contexts.choose(contexts.load(path), name, path)
    except ConfigError as exc:
        named_already = name is None or str(exc).startswith("--context")
        raise ConfigError(f"{exc}" if named_already else f"--context {name}: {exc}") from exc


def _rank(ctx: _Parsed, parameter: str) -> int:
    source = ctx.get_parameter_source(parameter)
    return _RANKS.get(getattr(source, "name", ""), 0)


def _token(target: Target) -> str:
    if target.token_from == TOKEN_FLAGS:
        try:
            return read_token(target.token_file, where="--token-file")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (set {TOKEN_FLAGS})") from exc
    try:
        return read_token(target.token_file, where=f"{target.token_from}: token_file")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (fix the context or pass --token-file)") from exc
