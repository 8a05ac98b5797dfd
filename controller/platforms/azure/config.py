"""The `sources.azure` section: the scale sets whose VMs are discovered through Azure Resource Manager."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from controller.core.settings import Frozen, HttpUrl, Seconds, TokenFile

COMPUTE_API_VERSION = "2024-07-01"
"""Microsoft.Compute virtualMachineScaleSets/virtualMachines - List."""
NETWORK_API_VERSION = "2024-05-01"
"""Microsoft.Network Network Interfaces - List Virtual Machine Scale Set Network Interfaces."""


class ScaleSetConfig(Frozen):
    subscription: str = Field(min_length=1)
    resource_group: str = Field(min_length=1)
    name: str = Field(min_length=1)
    """A uniform scale set of API servers."""


class AzureSourceConfig(Frozen):
    """The scale sets' VMs as the controller's inventory (docs/platforms.md, Azure discovery)."""

    enabled: bool = False
    scale_sets: tuple[ScaleSetConfig, ...] = ()
    arm_url: HttpUrl = "https://management.azure.com"
    """Azure Resource Manager (a fake on loopback in tests)."""
    auth: Literal["managed_identity", "token", "anonymous"] = "managed_identity"
    """managed_identity: the VM's identity through azure-identity (IMDS); token: the bearer token in
    `token_file`; anonymous: none (a fake)."""
    client_id: str | None = Field(default=None, min_length=1)
    """A user-assigned identity's client id; None: the system-assigned identity (or the only one)."""
    token: TokenFile | None = Field(default=None, alias="token_file")
    """Never logged."""
    interval_s: Seconds = 30.0
    """How often the scale sets are listed; a new VM is in the inventory within one interval."""
    agent_port: int = Field(default=9100, ge=1, le=65535)
    agent_scheme: Literal["http", "https"] = "http"
    agent_token: TokenFile | None = Field(default=None, alias="agent_token_file")
    """The fleet's one agent token file (the stacks render /etc/drainctl/agent-token); never logged."""
    pool: str | None = Field(default=None, min_length=1)
    """Every discovered VM's pool; None: the name of its scale set."""
    request_timeout_s: Seconds = 10.0
    retry_max_s: Seconds = 30.0
    """Longest wait between retries of a failing list (at least what Retry-After asks)."""
    compute_api_version: str = COMPUTE_API_VERSION
    network_api_version: str = NETWORK_API_VERSION

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> AzureSourceConfig:
        if self.enabled and (not self.scale_sets or self.agent_token is None):
            raise ValueError("scale_sets and agent_token_file are required when azure is enabled")
        if self.auth == "token" and self.token is None:
            raise ValueError("auth token needs token_file: PATH")
        return self
