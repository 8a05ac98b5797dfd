"""`drainctl testbed agent`: the node agent with a test-only fault switch, for end-to-end tests of the retries.

It runs exactly what `drainctl agent --config agent.yaml` runs, plus one middleware (inside the agent's token
check and its error mapping) that fails the first `--fail-resets` `POST /v1/reset` and the first
`--fail-releases` `POST /v1/notices/{id}/release` with a `TemporaryError` before the agent acts, so the answer
is the agent's own 503 with its `Retry-After`, as when `ss` times out or IMDS answers 5xx. The switch exists
only as these flags of this testbed command: agent.yaml has no key for it, and `drainctl agent` never installs
it (issue 9: "an agent answering 503 to the first reset and the first release").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from aiohttp import web
from aiohttp.typedefs import Middleware

from controller.core.errors import TemporaryError
from controller.protocol import agent as wire

log = logging.getLogger("drainctl.testbed.agent_faults")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULT_DELAY_S = 1.0
"""The Retry-After of a faulted answer (seconds)."""


@dataclass
class FirstFailures:
    """How many of the next resets and releases still fail; counts down as they are refused."""

    resets: int = 0
    releases: int = 0
    refused: dict[str, int] = field(default_factory=lambda: {"reset": 0, "release": 0})

    def middleware(self) -> Middleware:
        @web.middleware
        async def first_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
            kind = _kind(request)
            if kind is not None and self._take(kind):
                log.warning("testbed fault: refusing %s %s (503)", request.method, request.path)
                raise TemporaryError(f"testbed fault: {kind} refused on purpose", delay_s=FAULT_DELAY_S)
            return await handler(request)

        return first_failures

    def _take(self, kind: str) -> bool:
        left = self.resets if kind == "reset" else self.releases
        if left <= 0:
            return False
        if kind == "reset":
            self.resets -= 1
        else:
            self.releases -= 1
        self.refused[kind] += 1
        return True


def _kind(request: web.Request) -> str | None:
    if request.method != "POST":
        return None
    canonical = getattr(request.match_info.route.resource, "canonical", None)
    return {wire.RESET: "reset", wire.NOTICE_RELEASE: "release"}.get(str(canonical))


def agent(
    config: Annotated[Path, typer.Option("--config", help="The agent's YAML config (see docs/agent.md).")],
    fail_resets: Annotated[int, typer.Option(help="Answer 503 to this many first resets.", min=0)] = 0,
    fail_releases: Annotated[int, typer.Option(help="Answer 503 to this many first releases.", min=0)] = 0,
) -> None:
    """Run the node agent, answering 503 to its first resets and releases (test-only fault switch)."""
    from controller.agent.config import load_settings
    from controller.agent.serving import serve

    faults = FirstFailures(resets=fail_resets, releases=fail_releases)
    serve(load_settings(config), middlewares=[faults.middleware()])
