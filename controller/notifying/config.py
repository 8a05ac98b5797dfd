"""The `webhooks:` section of controller.yaml and agent.yaml: where to post, with what, for which events.

    webhooks:
      - name: oncall-slack                         # in logs and errors (never the URL)
        url_file: /etc/drainctl/slack-webhook.url  # the URL is a secret (Slack's carries its token)
        headers_file: /etc/drainctl/hook.headers   # optional, lines of `Name: value` (e.g. Authorization)
        template: {text: "$text"}                  # optional; default: Slack's {"text": ...} plus `drainctl`
        events: [drain.started, drain.ended, fallback.started, fallback.ended]   # default: all of them

The URL and the headers are read at load time into `SecretStr`s: they never show up in a repr, a log line or an
error (errors name the webhook by `name`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, field_validator

from controller.core.settings import Frozen, Seconds, http_url, read_token
from controller.notifying.bodies import EventKind, check_template


class HeaderFileError(ValueError):
    """A headers file that cannot be used; the message names the file and the line, never a value."""


def _read_url(path: Path | str) -> SecretStr:
    url = read_token(path)
    try:
        http_url(url)
    except ValueError:
        raise ValueError(f"{str(path)!r} does not hold an http:// or https:// URL") from None
    return SecretStr(url)


def read_headers(path: Path | str) -> dict[str, SecretStr]:
    """`Name: value` lines (blank lines and `#` comments skipped) as secret header values."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HeaderFileError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    headers: dict[str, SecretStr] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or not name.strip().isascii() or " " in name.strip():
            raise HeaderFileError(f"{str(path)!r} line {number}: expected `Name: value`")
        headers[name.strip()] = SecretStr(value.strip())
    return headers


def _headers(value: Any) -> Mapping[str, SecretStr]:
    if not isinstance(value, str | Path):
        raise ValueError("expected the path of a file of `Name: value` lines (headers are secrets: not in YAML)")
    return read_headers(value)


class WebhookConfig(Frozen):
    """One receiver of notifications."""

    name: str = Field(default="webhook", min_length=1, max_length=64)
    """How logs, errors and the metric's documentation name this webhook."""
    url: Annotated[SecretStr, BeforeValidator(_read_url)] = Field(alias="url_file")
    """Read from `url_file`; never logged."""
    headers: Annotated[Mapping[str, SecretStr], BeforeValidator(_headers)] = Field(
        default_factory=dict, alias="headers_file"
    )
    """Read from `headers_file` (`Name: value` lines); never logged."""
    template: Any = None
    """The JSON body, with `$field` placeholders in its strings (`bodies.FIELDS`); None: the Slack-compatible
    default, `{"text": ..., "drainctl": {every field}}`."""
    events: frozenset[EventKind] = frozenset(EventKind)
    """Which notifications this webhook gets."""
    timeout_s: Seconds = 5.0
    """Per attempt."""
    retry_initial_s: Seconds = 1.0
    """First wait after a failed attempt; doubles up to `retry_max_s` (at least a 429's Retry-After)."""
    retry_max_s: Seconds = 30.0
    give_up_after_s: Seconds = 600.0
    """No attempt starts later than this after the first one; the delivery is then given up (and counted)."""

    @field_validator("events", mode="before")
    @classmethod
    def _known_events(cls, value: Any) -> Any:
        known = {kind.value for kind in EventKind}
        for item in value if isinstance(value, list | tuple | set | frozenset) else ():
            if item not in known:
                raise ValueError(f"unknown event {item!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("template")
    @classmethod
    def _known_fields(cls, value: Any) -> Any:
        if value is not None:
            check_template(value)
        return value

    def wants(self, kind: EventKind) -> bool:
        return kind in self.events


def _unique_names(hooks: tuple[WebhookConfig, ...]) -> tuple[WebhookConfig, ...]:
    names = [hook.name for hook in hooks]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"two webhooks are named {name!r}; give each its own `name`")
    return hooks


WebhookList = Annotated[tuple[WebhookConfig, ...], AfterValidator(_unique_names)]
"""The `webhooks:` key: each webhook named once (the controller keeps a cursor per name)."""
