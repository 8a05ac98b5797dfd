"""The notices platform: platform notices that the hosts' node agents saw or were told about.

This is the production path for Azure Scheduled Events and GCE maintenance notices (each agent watches its
own platform, `controller/agent/watchers/`) and the testbed supervisor's notices: the controller reads every
static instance's agent (`GET /v1/notices`) and releases a drained instance's notices on the same agent.
Its section and source name stay `local` (see `config`).
"""

from __future__ import annotations

from controller.core.notices import SOURCE
from controller.platforms.notices.config import LocalSourceConfig
from controller.platforms.notices.releasing import AgentNoticeRelease
from controller.platforms.notices.watching import LocalSource
from controller.plugins import Context, Parts, Platform


def connect(settings: LocalSourceConfig, context: Context) -> Parts:
    source = LocalSource(context.agents, poll_interval_s=settings.poll_interval_s,
                         max_in_flight=settings.max_in_flight, rate_per_s=settings.rate_per_s)
    sources = (source,) if settings.enabled else ()
    return Parts(sources=sources, releasers={SOURCE: AgentNoticeRelease(context.agents)})


PLATFORM = Platform(name="local", settings=LocalSourceConfig, connect=connect)
