"""What the stack uploads for its VMs to install: the wheelhouse of `make dist` and, optionally, the app server.

The program reads the files at program time and hashes them; each becomes an object named by its content
(`drainctl/wheelhouse-<sha256[:16]>.tar.gz`), so a new build is a new object, the boot script renders the new name
and hash, and a VM never installs bytes its script did not name. The per-cloud stores live in
infra/gcp/artifacts.py and infra/azure/artifacts.py; the boot script's side is infra/scripts.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import ConfigError
from infra.config import ServerSettings
from infra.dist import REPO, WHEELHOUSE

WHEELHOUSE_PREFIX = "drainctl/wheelhouse-"
APP_PREFIX = "app/"


@dataclass(frozen=True)
class Artifact:
    """One file the stack uploads and the VMs fetch, check and install."""

    path: Path
    sha256: str
    object_name: str
    """Content-addressed name in the bucket / container."""


@dataclass(frozen=True)
class Artifacts:
    wheelhouse: Artifact
    app: Artifact | None
    """The app server's archive, when `drainctl:app.server` names one (else the command is on the image)."""

    def all(self) -> tuple[Artifact, ...]:
        return (self.wheelhouse, self.app) if self.app else (self.wheelhouse,)


def load(server: ServerSettings, *, wheelhouse: Path | None = None) -> Artifacts:
    """The stack's artifacts, read and hashed now; a missing or changed file is one `ConfigError` line."""
    return Artifacts(wheelhouse=load_wheelhouse(wheelhouse or WHEELHOUSE), app=_app(server))


def load_wheelhouse(path: Path) -> Artifact:
    sha256 = _sha256(path, missing="run `make dist` first (it builds the wheel and the wheelhouse the VMs install)")
    return Artifact(path=path, sha256=sha256, object_name=f"{WHEELHOUSE_PREFIX}{sha256[:16]}.tar.gz")


def _app(server: ServerSettings) -> Artifact | None:
    if server.artifact is None or server.sha256 is None:
        return None
    path = server.artifact if server.artifact.is_absolute() else REPO / server.artifact
    where = "drainctl:app.server.artifact"
    sha256 = _sha256(path, missing=f"{where} names a file that does not exist")
    if sha256 != server.sha256:
        raise ConfigError(f"{where}: {path} has sha256 {sha256}, the stack says {server.sha256}")
    return Artifact(path=path, sha256=sha256, object_name=f"{APP_PREFIX}{sha256[:16]}/{path.name}")


def _sha256(path: Path, *, missing: str) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; {missing}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return digest.hexdigest()
