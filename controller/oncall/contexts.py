"""Named contexts, like a kubeconfig: which controller to ask, and with which token, by a name.

From a laptop on-call reaches several controllers (each cloud's pair, through an IAP or Bastion
tunnel: docs/runbook.md). The contexts file (`$DRAINCTL_CONTEXTS`, else
`~/.config/drainctl/contexts.yaml`, else /etc/drainctl/contexts.yaml) names them:

    current: production-gcp
    contexts:
      production-gcp: {url: "http://127.0.0.1:9300", token_file: production-gcp.token}
      production-azure: {url: "http://127.0.0.1:9310", token_file: ~/tokens/azure.token}

A relative `token_file` is relative to the contexts file (kubectl's rule), `~` is the home
directory. The token itself is read only when a command connects (controller/oncall/connecting.py),
so `drainctl context list` works without any. Every problem is one `ConfigError` line naming the
file.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationError

from controller.core.errors import ConfigError
from controller.core.settings import Frozen, HttpUrl, first_error, load_yaml

CONTEXTS_ENV = "DRAINCTL_CONTEXTS"
DEFAULT_CONTEXTS = Path("~/.config/drainctl/contexts.yaml")
SYSTEM_CONTEXTS = Path("/etc/drainctl/contexts.yaml")
"""Read when the user has no contexts file: a controller VM's own (`sudo drainctl status` there)."""
_CURRENT_LINE = re.compile(r"^current:.*$", re.MULTILINE)

ContextName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=63)
]
"""`production-gcp`: letters, digits, `.`, `_`, `-` (safe on a command line and in a file)."""


class Context(Frozen):
    url: HttpUrl
    """The controller's API base URL, as this laptop reaches it (a tunnel's local end, usually)."""
    token_file: Path
    """The file holding the controller's API token (0600); relative to the contexts file."""


class Contexts(Frozen):
    current: ContextName | None = None
    """The context a command uses when no `--context` is given."""
    contexts: dict[ContextName, Context] = Field(default_factory=dict)


@dataclass(frozen=True)
class Chosen:
    """One context, resolved: its name, URL, token file (absolute) and the file it came from."""

    name: str
    url: str
    token_file: Path
    source: Path


def contexts_path() -> tuple[Path, bool]:
    """The contexts file, and whether it was named explicitly (`$DRAINCTL_CONTEXTS`): else the user's, else
    the system's (`SYSTEM_CONTEXTS`, written on each controller VM by its boot script) when only that exists."""
    named = os.environ.get(CONTEXTS_ENV)
    if named:
        return Path(named).expanduser(), True
    users = DEFAULT_CONTEXTS.expanduser()
    return (SYSTEM_CONTEXTS if not users.exists() and SYSTEM_CONTEXTS.exists() else users), False


def load(path: Path) -> Contexts:
    """The contexts file at `path`, validated; `ConfigError` (one line naming the file) if not."""
    if not path.is_file():
        raise ConfigError(f"no contexts file at {str(path)!r} (create it or set {CONTEXTS_ENV}; "
                          "see docs/runbook.md)")
    raw = load_yaml(path)
    try:
        contexts = Contexts.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_error(exc)}") from exc
    current = contexts.current
    if current is not None and current not in contexts.contexts:
        raise ConfigError(f"{path}: current: {current!r} is not one of the contexts "
                          f"({known(contexts)})")
    return contexts


def choose(contexts: Contexts, name: str | None, path: Path) -> Chosen | None:
    """Context `name` (else the file's `current`; None if neither); unknown: a `ConfigError`."""
    picked = name if name is not None else contexts.current
    if picked is None:
        return None
    if picked not in contexts.contexts:
        raise ConfigError(f"--context: no context {picked!r} in {path} ({known(contexts)})")
    context = contexts.contexts[picked]
    return Chosen(picked, context.url, _beside(path, context.token_file), path)


def use(path: Path, name: str) -> None:
    """Make `name` the file's `current`, keeping the rest of the file (comments too) as it is."""
    contexts = load(path)
    if name not in contexts.contexts:
        raise ConfigError(f"no context {name!r} in {path} ({known(contexts)})")
    text = path.read_text(encoding="utf-8")
    line = f"current: {name}"
    if _CURRENT_LINE.search(text):
        _replace(path, _CURRENT_LINE.sub(line, text, count=1))
    else:
        _replace(path, f"{line}\n{text}")


def known(contexts: Contexts) -> str:
    names = ", ".join(sorted(contexts.contexts))
    return f"known: {names}" if names else "it has none"


def _beside(path: Path, token_file: Path) -> Path:
    expanded = token_file.expanduser()
    return expanded if expanded.is_absolute() else path.parent / expanded


def _replace(path: Path, text: str) -> None:
    """Write `text` over `path` atomically (a reader sees old or new), keeping its mode."""
    mode = path.stat().st_mode & 0o777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from exc
