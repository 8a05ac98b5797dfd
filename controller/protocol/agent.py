"""The node agent's HTTP API on the wire (DESIGN.md §6): its paths, and a model for every body it takes or gives.

One definition for both ends, so they cannot drift apart: the agent's routes (controller/agent/routes.py)
validate requests and serialize answers with these models; the controller's client (controller/hosts/client.py)
sends the requests and validates the answers with them.

Compatibility is asymmetric on purpose. A request with a key the agent does not know is refused (400): a typo
in a drain rate must not pass silently. An answer with a key the client does not know is accepted: a newer
agent may say more, and an older controller must still read it. Keys are never renamed or dropped; the
testbed supervisor, the e2e tests and deployed agents read them.

Imports only pydantic (and the standard library): the agent and the controller both depend on this module.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

HEALTHZ = "/healthz"
DRAIN = "/v1/drain"
NOT_READY = "/v1/not-ready"
CONNECTIONS = "/v1/connections"
RESET = "/v1/reset"
NOTICES = "/v1/notices"
NOTICE = "/v1/notices/{id}"
NOTICE_RELEASE = "/v1/notices/{id}/release"
SHUTDOWN_HOLD = "/v1/shutdown-hold"
METRICS = "/metrics"

DRAIN_ID_HEADER = "Drainctl-Drain-Id"
"""Sent by the controller on every request of a drain's pass: the agent tags its log lines with the drain id."""

NoticeId = Annotated[str, Field(min_length=1, max_length=256)]
Seconds = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def notice_path(notice_id: str) -> str:
    """`GET /v1/notices/{id}` for this id (any character of an id is quoted, `/` too)."""
    return NOTICE.format(id=quote(notice_id, safe=""))


def release_path(notice_id: str) -> str:
    """`POST /v1/notices/{id}/release` for this id."""
    return NOTICE_RELEASE.format(id=quote(notice_id, safe=""))


class _Request(BaseModel):
    """A body the agent accepts: unknown keys and wrong types are a 400."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _Answer(BaseModel):
    """A body the agent sends: keys the reader does not know (a newer agent's) are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class DrainRequest(_Request):
    """`POST /v1/drain`: have the app drain through its drain hook."""

    rate_per_s: Positive
    """Disconnects per second."""


class NoticeRequest(_Request):
    """`POST /v1/notices`: a platform notice for this host (idempotent by id)."""

    id: NoticeId
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    not_after: Seconds
    """Unix seconds."""


class HoldRequest(_Request):
    """`POST /v1/shutdown-hold` (an empty body is the same as `{}`): wait for the release of the host's notices."""

    window_s: Positive | None = None
    """None: the agent's `hold.window_s` (or until `not_after`)."""
    notice_id: NoticeId | None = None
    """Hold for this notice alone, opened with this id (the pod uid of a Kubernetes preStop hook)."""
    not_after: Seconds | None = None
    """Unix seconds: the notice's deadline and the end of the hold; only with `notice_id`, not with `window_s`."""

    @model_validator(mode="after")
    def _one_deadline(self) -> HoldRequest:
        if self.not_after is not None and self.notice_id is None:
            raise ValueError("not_after needs notice_id")
        if self.not_after is not None and self.window_s is not None:
            raise ValueError("give not_after or window_s, not both")
        return self


class HealthAnswer(_Answer):
    """`GET /healthz` (no token needed)."""

    status: str = "ok"


class DrainAnswer(_Answer):
    """`POST /v1/drain`, 202: the app took the drain request."""

    accepted: bool = True
    app: dict[str, Any]
    """The app's drain hook's own answer, passed through as it came."""


class NotReadyAnswer(_Answer):
    """`POST /v1/not-ready`, 202: the drain's first step, out of rotation (sockets are still served)."""

    ready: bool
    """What the app says now: false once it answers `/readyz` with 503; true when it ignored the call."""
    hook: bool = True
    """False when the app has no not-ready hook (`app.not_ready_url` unset): nothing was asked of it."""


class ConnectionsAnswer(_Answer):
    """`GET /v1/connections`: the kernel's count, not the app's."""

    port: int
    """The service port counted."""
    established: int
    """Established TCP sockets on it."""


class ResetAnswer(_Answer):
    """`POST /v1/reset`: the kernel destroyed the sockets (`ss -K`); each peer got a RST."""

    port: int
    reset: int
    """How many sockets were reset."""


class Notice(_Answer):
    """A platform lifecycle notice as the agent reports it (`GET /v1/notices`, `GET /v1/notices/{id}`...).

    Only the first four keys are required of an agent; the others were added over time, so an older agent's
    notice still reads. States and actors stay plain strings, so a newer agent's new value does not make a
    whole list unreadable.
    """

    id: str
    kind: str
    not_after: float
    """Unix seconds: the platform deletes the host at this time."""
    state: str
    """`open`, `draining` or `released`."""
    drain_started_by: str | None = None
    """`controller`, `agent` (its local fallback) or None."""
    reset: int | None = None
    """Sockets the agent's fallback reset for this notice, None when it reset none."""
    released_at: float | None = None
    released_by: str | None = None
    """`controller` or `agent`, None while not released."""
    seen_at: float | None = None
    """Unix seconds: when the agent first saw the notice."""
    source: str | None = None
    """Who reported it to the agent: `api`, `azure`, `gcp`, `shutdown` or `prestop` (controller/agent/notices.py)."""
    drain_started_at: float | None = None


class NoticesAnswer(_Answer):
    """`GET /v1/notices`: every notice the agent holds, released ones too."""

    notices: list[Notice]


class HoldAnswer(_Answer):
    """`POST /v1/shutdown-hold`, once the hold is over (controller/agent/holding.py)."""

    outcome: str
    """`released`: every notice it waited for was released; `timed_out`: the window ended first."""
    held_s: float
    notices: list[str]
    """The ids of the notices the hold waited for."""


class ErrorAnswer(_Answer):
    """Any 4xx or 5xx: what went wrong, in one line (401 is always `unauthorized`)."""

    error: str
