"""The typed building blocks of every config file: frozen models, seconds, URLs, HOST:PORT, token files.

Configuration is parsed once, at the edge, into frozen objects built from these (controller.yaml in
`controller/config.py` and each platform's section, agent.yaml in `controller/agent/config.py`, the testbed's
flags). A token file is read at load time into a `SecretStr`, so a token never shows up in a repr or a log line.
`HostPort` and `read_token` are the one HOST:PORT parser and the one token-file reader of drainctl (controller,
agent, on-call CLI, testbed); a config key uses them through `HostPortField` and `TokenFile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
)

from controller.core.errors import ConfigError


class TokenFileError(ConfigError, ValueError):
    """A token file that cannot be used (a ValueError too, so a config key's validator reports it by name)."""


def read_token(path: Path | str, *, where: str = "") -> str:
    """The stripped contents of a token file; `TokenFileError` (starting with `where: `, if given) when unusable."""
    prefix = f"{where}: " if where else ""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise TokenFileError(f"{prefix}cannot read {str(path)!r}: {exc.strerror}") from exc
    if not token:
        raise TokenFileError(f"{prefix}{str(path)!r} is empty")
    return token


@dataclass(frozen=True)
class HostPort:
    """A TCP address: `127.0.0.1:9300`, `[::1]:9300`, `:9300` (host "": every interface); port 0: any free one."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """ValueError `expected HOST:PORT, got '...'` for anything else."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host.removeprefix("[").removesuffix("]"), int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _hostport(value: Any) -> HostPort:
    if isinstance(value, HostPort):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return HostPort.parse(value)


def http_url(value: str) -> str:
    """An http:// or https:// URL with a host, without a trailing slash; ValueError for anything else."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"malformed URL {value!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def _positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return value


TokenFile = Annotated[SecretStr, BeforeValidator(read_token)]
"""A key naming a token file; the value is the token it holds (never logged)."""
HttpUrl = Annotated[str, AfterValidator(http_url)]
HostPortField = Annotated[HostPort, PlainValidator(_hostport), PlainSerializer(str)]
"""A key holding HOST:PORT (text in the file, a `HostPort` once parsed)."""
Seconds = Annotated[float, AfterValidator(_positive)]
"""A positive, finite number of seconds."""


class Frozen(BaseModel):
    """Every config section: unknown keys refused, immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class EngineConfig(Frozen):
    poll_interval_s: Seconds = 0.5
    """How often a draining instance's sockets are counted."""
    retry_initial_s: Seconds = 0.5
    """First retry delay after a temporary error; doubles up to `retry_max_s`."""
    retry_max_s: Seconds = 5.0


_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (a 10,000-instance controller.yaml: ~10x faster)."""


def load_yaml(path: Path) -> Any:
    """A config file's YAML; one `ConfigError` line naming the file (and the line) when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.load(text, Loader=_SAFE_LOADER)  # a safe loader: libyaml's when built with it
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def first_error(exc: ValidationError) -> str:
    """pydantic's first complaint as `key.path: message (and N more)`, without pydantic's names for union
    branches (`lax-or-strict[...]`)."""
    error = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"] if isinstance(part, int) or part.isidentifier())
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{key or '(top level)'}: {message}{more}"
