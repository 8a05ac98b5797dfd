"""A platform notice a host's agent holds, as a lifecycle event: the same event whether polled or pushed.

The controller reads each agent's notices (`controller/platforms/notices`) and the testbed supervisor pushes
the same notice to the API (`POST /v1/events`); both turn it into an event here, so the two copies get the same
deterministic id and the second is a duplicate. The source keeps its historical name `local`.
"""

from __future__ import annotations

from controller.core.models import EventKind, LifecycleEvent

SOURCE = "local"


def notice_event(instance: str, *, notice_id: str, kind: str, not_after: float) -> LifecycleEvent:
    try:
        event_kind = EventKind(kind)
    except ValueError:
        event_kind = EventKind.TERMINATE  # an unknown kind of notice still means the host is going away
    return LifecycleEvent.create(instance=instance, kind=event_kind, not_after=not_after, source=SOURCE,
                                 ref=notice_id)
