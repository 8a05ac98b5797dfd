"""Wiring of the GCP parts from controller.yaml (`sources.gcp`), used by `assembly`.

The MIG poller watches; the release goes to the instances' agents (`ShutdownHookRelease`), which are the static
inventory's (`instances:` in the config, named like the MIG's instances).
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.actions.guests import GuestAgent, ShutdownHookRelease
from controller.clients.gcp import (
    Anonymous,
    ComputeApi,
    GoogleCredentials,
    StaticToken,
    TokenSource,
)
from controller.config import GcpSourceConfig
from controller.sources import gcp as gcp_source
from controller.sources.metrics import SourceMetrics


class GcpParts:
    def __init__(self, settings: GcpSourceConfig, agents: Mapping[str, GuestAgent]) -> None:
        assert settings.project is not None
        self.settings = settings
        self.api = ComputeApi(
            project=settings.project, credentials=credentials(settings), base_url=settings.api_url,
            timeout_s=settings.request_timeout_s, page_size=settings.page_size, retry_max_s=settings.retry_max_s,
        )
        self.releaser = ShutdownHookRelease(agents)

    @classmethod
    def connect(cls, settings: GcpSourceConfig, agents: Mapping[str, GuestAgent]) -> GcpParts | None:
        """None when the gcp source is off; `CredentialsError` when credentials cannot be found."""
        return cls(settings, agents) if settings.enabled else None

    def source(self, metrics: SourceMetrics) -> gcp_source.GcpSource:
        groups = [gcp_source.Group(g.region, g.name) for g in self.settings.groups]
        return gcp_source.GcpSource(
            self.api, groups, metrics=metrics.of(gcp_source.SOURCE), poll_interval_s=self.settings.poll_interval_s,
            window_s=self.settings.window_s, retry_max_s=self.settings.retry_max_s,
        )

    async def aclose(self) -> None:
        await self.api.aclose()


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
