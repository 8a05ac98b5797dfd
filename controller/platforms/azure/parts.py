"""The Azure parts from controller.yaml's `sources.azure`: the Resource Manager client and the scale sets'
discovery (a runnable on every replica: it only reads). No source and no release: Scheduled Events reach the
controller through each VM's agent (the notices platform)."""

from __future__ import annotations

from controller.hosts.discovering import Discovery
from controller.platforms.azure.arm import Anonymous, ArmApi, ManagedIdentity, StaticToken, TokenSource
from controller.platforms.azure.config import AzureSourceConfig
from controller.platforms.azure.discovering import PLATFORM, Agents, AzureDiscovery, ScaleSet
from controller.plugins import Context, Parts, Runnable


def connect(settings: AzureSourceConfig, context: Context) -> Parts:
    if not settings.enabled or context.fleet is None:
        return Parts()
    assert settings.agent_token is not None
    api = ArmApi(credentials=credentials(settings), base_url=settings.arm_url, timeout_s=settings.request_timeout_s,
                 retry_max_s=settings.retry_max_s)
    agents = Agents(port=settings.agent_port, token=settings.agent_token.get_secret_value(),
                    scheme=settings.agent_scheme, pool=settings.pool,
                    compute_api_version=settings.compute_api_version,
                    network_api_version=settings.network_api_version)
    scale_sets = [ScaleSet(s.subscription, s.resource_group, s.name) for s in settings.scale_sets]
    rounds = Discovery(PLATFORM, AzureDiscovery(api, scale_sets, agents), context.fleet,
                       interval_s=settings.interval_s, retry_max_s=settings.retry_max_s)
    return Parts(runnables=(Runnable("azure-discovery", rounds.run, leader_only=False),), close=api.aclose)


def credentials(settings: AzureSourceConfig) -> TokenSource:
    if settings.auth == "anonymous":
        return Anonymous()
    if settings.auth == "token":
        assert settings.token is not None
        return StaticToken(settings.token.get_secret_value())
    return ManagedIdentity(settings.client_id)
