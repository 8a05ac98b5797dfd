"""Where the controller is and the token that proves who we are: `--controller` and `--token-file`.

Both have an environment variable (`DRAINCTL_CONTROLLER`, `DRAINCTL_TOKEN_FILE`) and a default that fits a
controller VM. Problems with either are one line naming the flag and the variable, never the token itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from controller.core.errors import ConfigError
from controller.core.settings import http_url, read_token
from controller.oncall.client import ControllerClient, ControllerRefusedToken, ControllerUnreachable

DEFAULT_CONTROLLER = "http://127.0.0.1:9300"
DEFAULT_TOKEN_FILE = Path("/etc/drainctl/api.token")

ControllerOption = Annotated[
    str,
    typer.Option("--controller", envvar="DRAINCTL_CONTROLLER", help="The controller's API base URL."),
]
TokenFileOption = Annotated[
    Path,
    typer.Option("--token-file", envvar="DRAINCTL_TOKEN_FILE", help="File holding the controller's API token."),
]


@contextmanager
def connect(url: str, token_file: Path) -> Iterator[ControllerClient]:
    """A client of the controller at `url`; its refusals and absences say which flag to look at."""
    client = ControllerClient(controller_url(url), _token(token_file))
    try:
        yield client
    except ControllerRefusedToken as exc:
        raise ControllerRefusedToken(
            f"{exc}: check the token in {str(token_file)!r} (--token-file or DRAINCTL_TOKEN_FILE)"
        ) from exc
    except ControllerUnreachable as exc:
        raise ControllerUnreachable(
            f"{exc} (is `drainctl run` running there? --controller or DRAINCTL_CONTROLLER)"
        ) from exc
    finally:
        client.close()


def controller_url(url: str) -> str:
    try:
        return http_url(url)
    except ValueError as exc:
        raise ConfigError(f"--controller: {exc}") from exc


def _token(path: Path) -> str:
    try:
        return read_token(path, where="--token-file")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (set --token-file or DRAINCTL_TOKEN_FILE)") from exc
