"""What a webhook says: one `Notification` (what happened, to which instance, with which delivery id) and the
JSON body a template makes of it.

The delivery id is stable per notification, not per attempt: every attempt of one notification carries the same
id (header `Drainctl-Delivery` and the body's `drainctl.delivery_id`), and a notification derived again after a
restart gets the same id again, so a receiver dedupes by it (delivery is at least once).

Templates are JSON values whose strings may hold `$field` placeholders (`string.Template`: no attribute access,
no code), e.g. `{"text": "$instance: $outcome ($reason)"}`; unknown fields are refused when the config is read.
"""

from __future__ import annotations

import datetime
import enum
import string
from dataclasses import asdict, dataclass
from typing import Any


class EventKind(enum.StrEnum):
    DRAIN_STARTED = "drain.started"
    """The controller sent the drain request (or began a reset-only episode)."""
    DRAIN_ENDED = "drain.ended"
    """The drain reached its end: `outcome` graceful, forced or failed."""
    FALLBACK_STARTED = "fallback.started"
    """A node agent acts alone: the controller stayed silent on a platform notice (or left it unreleased)."""
    FALLBACK_ENDED = "fallback.ended"
    """The agent's fallback released the notice: `outcome` drained, forced or controller (see docs)."""


DELIVERY_HEADER = "Drainctl-Delivery"
"""The header carrying the delivery id on every attempt."""
EVENT_HEADER = "Drainctl-Event"


@dataclass(frozen=True)
class Notification:
    """One thing worth telling a human, as strings and numbers a template can use."""

    event: EventKind
    delivery_id: str
    instance: str
    at: float
    """Unix seconds: when it happened (journaled, or seen by the agent)."""
    by: str
    """Who acted: controller or agent."""
    drain_id: int | None = None
    outcome: str | None = None
    reason: str | None = None
    source: str | None = None
    """The lifecycle event's source (local, gcp, kubernetes, manual) or the agent's notice source."""
    sockets_reset: int | None = None

    @property
    def text(self) -> str:
        """A one-line summary for humans (the default body's `text`)."""
        what = {
            EventKind.DRAIN_STARTED: "drain started",
            EventKind.DRAIN_ENDED: f"drain ended: {self.outcome}",
            EventKind.FALLBACK_STARTED: "node agent's fallback acting alone (controller silent)",
            EventKind.FALLBACK_ENDED: f"node agent's fallback done: {self.outcome}",
        }[self.event]
        ident = f" (drain {self.drain_id})" if self.drain_id is not None else ""
        reset = f", {self.sockets_reset} sockets reset" if self.sockets_reset else ""
        reason = f": {self.reason}" if self.reason else ""
        return f"drainctl: {self.instance}{ident}: {what}{reset}{reason}"

    def fields(self) -> dict[str, Any]:
        """Every field a template may name, `text` and `time` (RFC 3339, UTC) included."""
        values = asdict(self)
        values["event"] = self.event.value
        values["text"] = self.text
        values["time"] = rfc3339(self.at)
        return values


FIELDS = frozenset(
    ("event", "delivery_id", "instance", "at", "by", "drain_id", "outcome", "reason", "source", "sockets_reset",
     "text", "time")
)
"""The placeholders a template may use."""


def rfc3339(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(template: Any, notification: Notification) -> Any:
    """The JSON body: `template` with `$field` replaced in every string (a missing value is ""); None: the
    Slack-compatible default `{"text": ..., "drainctl": {every field}}`."""
    fields = notification.fields()
    if template is None:
        return {"text": fields["text"], "drainctl": fields}
    words = {name: "" if value is None else str(value) for name, value in fields.items()}
    return _substitute(template, words)


def _substitute(value: Any, words: dict[str, str]) -> Any:
    if isinstance(value, str):
        return string.Template(value).safe_substitute(words)
    if isinstance(value, dict):
        return {key: _substitute(item, words) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, words) for item in value]
    return value


def check_template(template: Any) -> None:
    """ValueError naming the first placeholder that is not a field, or a value JSON cannot carry."""
    if isinstance(template, str):
        unknown = sorted(set(string.Template(template).get_identifiers()) - FIELDS)
        if unknown or not string.Template(template).is_valid():
            raise ValueError(f"template: unknown placeholder ${(unknown or ['?'])[0]}; known: "
                             f"{', '.join(sorted(FIELDS))} (write $$ for a dollar sign)")
    elif isinstance(template, dict):
        for key, item in template.items():
            if not isinstance(key, str):
                raise ValueError(f"template: keys must be strings, got {key!r}")
            check_template(item)
    elif isinstance(template, list):
        for item in template:
            check_template(item)
    elif template is not None and not isinstance(template, bool | int | float):
        raise ValueError(f"template: {type(template).__name__} is not a JSON value")
