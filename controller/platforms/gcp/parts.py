"""The GCP parts from controller.yaml's `sources.gcp`: the Compute API client, the MIG poller, the release, and
the backend services' health the out-of-rotation step observes (`backend_health`, `backends.py`).

The MIGs are the section's `groups`, or those its `group_labels` select (`selecting.py`: one selection shared by
the poller and the discovery, so they read the same MIGs and list the project's MIGs once per refresh). The
MIG poller watches; the release goes to the instances' agents (`ShutdownHookRelease`): the static
inventory's (`instances:` in the config, named like the MIG's instances) or, with `discovery`, those the MIGs'
discovery found (`discovering.py`, a runnable on every replica).
"""

from __future__ import annotations

from controller.core.ports import Balancer
from controller.hosts.discovering import Discovery
from controller.platforms.gcp import watching as gcp_source
from controller.platforms.gcp.backends import BackendHealth, BackendService
from controller.platforms.gcp.compute import (
    Anonymous,
    ComputeApi,
    GoogleCredentials,
    StaticToken,
    TokenSource,
)
from controller.platforms.gcp.config import GcpSourceConfig
from controller.platforms.gcp.discovering import PLATFORM, Agents, GcpDiscovery
from controller.platforms.gcp.releasing import ShutdownHookRelease
from controller.platforms.gcp.selecting import Group, Labelled, Named, Selection
from controller.plugins import Context, Parts, Runnable


def connect(settings: GcpSourceConfig, context: Context) -> Parts:
    """Nothing when the section is off; `CredentialsError` when credentials cannot be found."""
    if not settings.enabled:
        return Parts()
    assert settings.project is not None
    api = ComputeApi(
        project=settings.project, credentials=credentials(settings), base_url=settings.api_url,
        timeout_s=settings.request_timeout_s, page_size=settings.page_size, retry_max_s=settings.retry_max_s,
    )
    groups = selection(settings, api)
    source = gcp_source.GcpSource(
        api, groups, metrics=context.source_metrics.of(gcp_source.SOURCE), poll_interval_s=settings.poll_interval_s,
        window_s=settings.window_s, retry_max_s=settings.retry_max_s,
    )
    release = ShutdownHookRelease(context.agents)
    return Parts(sources=(source,), releasers={gcp_source.SOURCE: release}, close=api.aclose,
                 runnables=discovery(settings, context, api, groups), balancers=backend_health(settings, api, groups))


def backend_health(settings: GcpSourceConfig, api: ComputeApi, groups: Selection) -> tuple[Balancer, ...]:
    """The section's MIGs (named or selected by label, read again at each look) as the configured backend services
    see them (none configured: nothing observed)."""
    section = settings.backend_health
    if not section.backend_services:
        return ()
    services = [BackendService(s.name, s.region) for s in section.backend_services]

    async def urls() -> list[str]:
        return [api.group_url(g.region, g.name) for g in await groups.groups()]

    health = BackendHealth(api, services, urls, timeout_s=section.timeout_s)
    return (health.balancer(interval_s=section.interval_s),)


def selection(settings: GcpSourceConfig, api: ComputeApi) -> Selection:
    if settings.group_labels:
        return Labelled(api, settings.group_labels, refresh_s=settings.group_refresh_s)
    return Named([Group(g.region, g.name) for g in settings.groups])


def discovery(
    settings: GcpSourceConfig, context: Context, api: ComputeApi, groups: Selection
) -> tuple[Runnable, ...]:
    """The MIGs' instances into the fleet, every `discovery.interval_s`, on every replica (it only reads)."""
    found = settings.discovery
    if not found.enabled or context.fleet is None:
        return ()
    assert settings.project is not None and found.agent_token is not None
    agents = Agents(project=settings.project, port=found.agent_port, token=found.agent_token.get_secret_value(),
                    scheme=found.agent_scheme, address=found.address, pool=found.pool)
    if found.groups:
        groups = Named([Group(g.region, g.name) for g in found.groups])
    rounds = Discovery(PLATFORM, GcpDiscovery(api, groups, agents), context.fleet, interval_s=found.interval_s,
                       retry_max_s=settings.retry_max_s)
    return (Runnable("gcp-discovery", rounds.run, leader_only=False),)


def credentials(settings: GcpSourceConfig) -> TokenSource:
    if settings.auth == "anonymous":
        return Anonymous()
    if settings.auth == "token":
        assert settings.token is not None
        return StaticToken(settings.token.get_secret_value())
    if settings.auth == "credentials_file":
        assert settings.credentials_file is not None
        return GoogleCredentials.from_file(str(settings.credentials_file))
    return GoogleCredentials.application_default()
