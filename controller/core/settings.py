"""The typed building blocks of every config file: frozen models, seconds, URLs, HOST:PORT, token files.

Configuration is parsed once, at the edge, into frozen objects built from these (controller.yaml in
`controller/config.py` and each platform's section, agent.yaml in `controller/agent/config.py`). A token file
is read at load time into a `SecretStr`, so a token never shows up in a repr or a log line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr


def read_token(path: Path | str) -> str:
    """The stripped contents of a token file; ValueError (named by the caller's key) when unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    if not token:
        raise ValueError(f"{str(path)!r} is empty")
    return token


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError as exc:
        raise ValueError(f"malformed URL {value!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    return value.rstrip("/")


def _hostport(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


def _positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return value


TokenFile = Annotated[SecretStr, BeforeValidator(read_token)]
"""A key naming a token file; the value is the token it holds (never logged)."""
HttpUrl = Annotated[str, AfterValidator(_http_url)]
HostPortText = Annotated[str, AfterValidator(_hostport)]
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
