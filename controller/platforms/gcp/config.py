"""The `sources.gcp` section: regional managed instance groups, polled through the Compute API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controller.core.settings import Frozen, HttpUrl, Seconds, TokenFile

LABEL_KEY = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE = r"^[a-z0-9_-]{0,63}$"
"""GCE label keys and values (lowercase letters, digits, `_` and `-`; a key starts with a letter; 63 at most)."""
LabelKey = Annotated[str, Field(pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE)]


class GcpGroupConfig(Frozen):
    region: str = Field(min_length=1)
    name: str = Field(min_length=1)
    """A regional managed instance group of API servers."""


class GcpDiscoveryConfig(Frozen):
    """The MIGs' instances as the controller's inventory (docs/platforms.md, GCP discovery)."""

    enabled: bool = False
    interval_s: Seconds = 30.0
    """How often the MIGs are listed; a new instance is in the inventory within one interval."""
    groups: tuple[GcpGroupConfig, ...] = ()
    """The MIGs whose instances are discovered; empty: the section's (its `groups` or its `group_labels`)."""
    address: Literal["network_ip", "dns"] = "network_ip"
    """network_ip: the instance's networkInterfaces[0].networkIP (instances.aggregatedList);
    dns: its zonal internal DNS name NAME.ZONE.c.PROJECT.internal (no extra call)."""
    agent_port: int = Field(default=9100, ge=1, le=65535)
    agent_scheme: Literal["http", "https"] = "http"
    agent_token: TokenFile | None = Field(default=None, alias="agent_token_file")
    """The fleet's one agent token file (the stacks render /etc/drainctl/agent-token); never logged."""
    pool: str | None = Field(default=None, min_length=1)
    """Every discovered instance's pool; None: the name of its MIG."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> GcpDiscoveryConfig:
        if self.enabled and self.agent_token is None:
            raise ValueError("agent_token_file is required when discovery is enabled")
        return self


class GcpBackendServiceConfig(Frozen):
    name: str = Field(min_length=1)
    region: str | None = Field(default=None, min_length=1)
    """None: a global backend service (the external Application Load Balancer infra/gcp renders); else the
    region of a regional one."""


class GcpBackendHealthConfig(Frozen):
    """Backend services whose health of each instance the drain's out-of-rotation step observes
    (`backends.py`, docs/platforms.md): the step ends once none of them routes to the instance."""

    backend_services: tuple[GcpBackendServiceConfig, ...] = ()
    """Empty: nothing is observed, the step waits the budget's `lb_deregistration_s`."""
    interval_s: Seconds = 1.0
    """Each group's health is asked at most this often during a step (one getHealth per service and group)."""
    timeout_s: Seconds = 2.0
    """Per getHealth call; a slower answer is "cannot tell" this time, so a slow API never holds the step."""


class GcpSourceConfig(Frozen):
    """Managed instances of regional MIGs being taken away, by polling (docs/platforms.md, GCP)."""

    enabled: bool = False
    project: str | None = Field(default=None, min_length=1)
    groups: tuple[GcpGroupConfig, ...] = ()
    """The regional MIGs, by name (what the stacks render). Exactly one of `groups` and `group_labels`."""
    group_labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    """Instead of `groups`: every regional MIG of the project whose instances get all these labels (from the
    MIG's instance template, with its all-instances configuration on top: `selecting.py`)."""
    group_refresh_s: Seconds = 60.0
    """How often the `group_labels` selection lists the project's MIGs: a new labelled MIG is polled and
    discovered within this (plus one poll or discovery interval)."""
    api_url: HttpUrl = "https://compute.googleapis.com"
    """The Compute Engine API (a fake on loopback in tests)."""
    auth: Literal["adc", "credentials_file", "token", "anonymous"] = "adc"
    """adc: Application Default Credentials (the VM's service account, GOOGLE_APPLICATION_CREDENTIALS);
    credentials_file: the key file `credentials_file`; token: the bearer token in `token_file`; anonymous: none."""
    credentials_file: Path | None = None
    token: TokenFile | None = Field(default=None, alias="token_file")
    """Never logged."""
    poll_interval_s: Seconds = 5.0
    window_s: Seconds = 600.0
    """The graceful-shutdown window assumed when a managed instance carries no shutdownDetails (GCP default 10 min)."""
    request_timeout_s: Seconds = 10.0
    page_size: int = Field(default=500, ge=1, le=500)
    retry_max_s: Seconds = 30.0
    """Longest wait between retries of a failing list (at least what Retry-After asks)."""
    discovery: GcpDiscoveryConfig = GcpDiscoveryConfig()
    backend_health: GcpBackendHealthConfig = GcpBackendHealthConfig()
    """What the out-of-rotation step observes (with `rotation.enabled`): the section's MIGs in these backend
    services."""

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> GcpSourceConfig:
        if self.enabled and self.project is None:
            raise ValueError("project is required when the gcp source is enabled")
        if self.groups and self.group_labels:
            raise ValueError("groups and group_labels: name the MIGs or select them by label, not both (one "
                             "list of MIGs per controller, so its config says which MIGs it protects)")
        if self.enabled and not self.groups and not self.group_labels:
            raise ValueError("groups (the MIGs by name) or group_labels (by label) is required when the gcp source "
                             "is enabled")
        if self.auth == "credentials_file" and self.credentials_file is None:
            raise ValueError("auth credentials_file needs credentials_file: PATH")
        if self.auth == "token" and self.token is None:
            raise ValueError("auth token needs token_file: PATH")
        return self
