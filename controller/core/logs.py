"""Logging of the controller and the agent: one format flag, one level, and the drain on every line of a drain.

Every line of a drain carries its drain id and instance, whichever module logs it: the engine binds them
(`bound(drain_id=..., instance=...)`, a contextvar, so concurrent passes of different instances never mix) where
a pass for an episode runs, the agent client sends the drain id to the agent (`DRAIN_ID_HEADER`), and the agent
binds it for that request's lines. `ContextFilter` copies the bound fields onto each record.

    text   2026-12-02 00:41:07,123 INFO drainctl.engine: A: verifying -> drained: verified zero [drain_id=3 instance=A]
           (under journald, stderr being `JOURNAL_STREAM`, without the time: the journal stamps each line)
    json   {"time": "2026-12-02T00:41:07.123Z", "level": "INFO", "logger": "drainctl.engine", "message": "...",
            "drain_id": 3, "instance": "A"}

Loggers are named `drainctl.<module path>` (`drainctl.agent.fallback`). The HTTP libraries' loggers stay at
WARNING at every level: httpx logs each request's URL at INFO, and a webhook's URL is a secret.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import enum
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from controller.core.settings import Frozen


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogConfig(Frozen):
    """The `log:` section of controller.yaml and agent.yaml; the command's flags override it."""

    format: LogFormat = LogFormat.TEXT
    level: LogLevel = LogLevel.INFO


QUIET_LOGGERS = ("httpx", "httpcore", "aiohttp.access", "hpack", "urllib3", "kubernetes")
"""Dependencies that log every request (with its URL) below WARNING; drainctl logs what it does itself."""
FIELDS = ("drain_id", "instance", "notice_id")
"""The context fields every line may carry, in this order."""
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNALD_FORMAT = "%(levelname)s %(name)s: %(message)s"

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("drainctl_log", default=None)
_process: dict[str, Any] = {}


def logger_name(module: str) -> str:
    """`controller.agent.fallback` -> `drainctl.agent.fallback`: the one naming scheme."""
    return "drainctl." + module.removeprefix("controller.")


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Inside: every log line of this task (and of tasks it starts) carries `fields` (None values dropped)."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_process(**fields: Any) -> None:
    """Fields on every line of this process (the agent's instance)."""
    _process.update({k: v for k, v in fields.items() if v is not None})


def current(field: str) -> Any:
    """A bound field's value here, or None (the agent client reads the drain id to send it on)."""
    return (_context.get() or {}).get(field, _process.get(field))


class ContextFilter(logging.Filter):
    """Copies the bound fields onto the record (`record.drainctl`), for either formatter."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {**_process, **(_context.get() or {})}
        record.__dict__["drainctl"] = {name: fields[name] for name in FIELDS if name in fields}
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields: Mapping[str, Any] = getattr(record, "drainctl", {})
        if not fields:
            return line
        first, newline, rest = line.partition("\n")
        tags = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{first} [{tags}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message, the bound fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "drainctl", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def under_journald(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is the journal's (systemd sets `JOURNAL_STREAM=<device>:<inode>` of the stderr it gives;
    a child whose stderr was redirected elsewhere inherits the variable but not the stream)."""
    device, _, inode = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return f"{status.st_dev}:{status.st_ino}" == f"{device}:{inode}"


def formatter(kind: LogFormat, *, journald: bool = False) -> logging.Formatter:
    """The formatter of `kind`; text without the time when the stream goes to journald."""
    if kind is LogFormat.JSON:
        return JsonFormatter()
    return TextFormatter(JOURNALD_FORMAT if journald else TEXT_FORMAT)


def configure(config: LogConfig, *, stream: TextIO | None = None) -> None:
    """The process's one log handler (stderr), replacing any other; the quiet loggers at WARNING at least."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(config.format, journald=under_journald(out)))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = getattr(logging, config.level.value.upper())
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
