"""Times as people read them: RFC 3339 with the zone, from the unix seconds the journal and the API keep.

The API's JSON keeps unix seconds (a contract scripts read); whatever is printed for a person (the CLI's
tables and lines, an API message) says the time this way, so nobody has to convert a raw number.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(unix_s: float, *, precise: bool = False) -> str:
    """`2026-12-02T00:31:07+00:00` in the local zone (with its offset); `precise`: to the millisecond."""
    moment = datetime.fromtimestamp(unix_s, tz=UTC).astimezone()
    return moment.isoformat(timespec="milliseconds" if precise else "seconds")
