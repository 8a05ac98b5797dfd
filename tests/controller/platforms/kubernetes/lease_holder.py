"""A Lease elector alone in a process, so a test can SIGKILL the holder the way a node dies.

    python -m tests.controller.platforms.kubernetes.lease_holder API_URL IDENTITY LEASE_DURATION_S RENEW_S

Prints `{"event": "leading", "identity": ...}` each time it starts leading.
"""

from __future__ import annotations

import asyncio
import json
import sys

from controller.platforms.kubernetes.api import connect
from controller.platforms.kubernetes.leases import LeaseElector, LeaseSettings


async def main(url: str, identity: str, duration_s: float, renew_s: float) -> None:
    api = connect(url, user_agent=f"drainctl/{identity}", request_timeout_s=5.0)
    elector = LeaseElector(api, LeaseSettings("default", "drainctl", identity, duration_s, renew_s))

    async def work() -> None:
        print(json.dumps({"event": "leading", "identity": identity}), flush=True)
        await asyncio.Event().wait()

    await elector.lead(work)


if __name__ == "__main__":
    url, identity, duration, renew = sys.argv[1:5]
    asyncio.run(main(url, identity, float(duration), float(renew)))
