"""The request bodies the API accepts, validated at the edge (unknown keys and wrong types are a 400)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Annotated[str, Field(min_length=1, max_length=256)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DrainRequest(_Body):
    """`POST /v1/drains`: an operator's drain (`drainctl drain`)."""

    instance: Name
    deadline_s: Positive | None = None
    """Graceful drain for up to this long, then reset what is left; None: the budget's drain_deadline_s."""
    rate_per_s: Positive | None = None
    """Disconnects per second; None: the budget's drain_rate_per_s."""
    dry_run: bool = False
    """Say what would happen, change nothing (no journal line, no agent call)."""
    request_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """The client's own id for this request, kept as the event's ref."""


RequestId = Annotated[str, Field(min_length=1, max_length=128)]


class WriteRequest(_Body):
    """`POST /v1/instances/{name}/reset` and `.../cancel`: an optional body, the client's request id.

    The same id on a retry makes the retry the same request (a reset-only episode is not started twice; a
    cancel answers the cancelled drain again). No body: a request without an id."""

    request_id: RequestId | None = None


class EventRequest(_Body):
    """`POST /v1/events`: a platform notice pushed by the testbed supervisor (the push half of `local`)."""

    instance: Name
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    not_after: Annotated[float, Field(allow_inf_nan=False)]
    """Unix seconds: the platform deletes the instance at this time."""
    id: Name
    """The notice id, the same one posted to the host's agent: the polled copy then is a duplicate."""
    source: Literal["local"] = "local"
