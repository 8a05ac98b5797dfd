"""The Kubernetes sections of controller.yaml: `sources.kubernetes` (pods being deleted) and `leader` (a Lease)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from controller.core.settings import Frozen, HttpUrl, Seconds, TokenFile

FINALIZER_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"



class EndpointsConfig(Frozen):
    """The Service whose EndpointSlices the drain's out-of-rotation step observes (`endpoints.py`)."""

    service: str | None = Field(default=None, min_length=1)
    """The API servers' Service in the section's namespace; None: nothing is observed, the step waits the
    budget's `lb_deregistration_s`."""
    interval_s: Seconds = 1.0
    """The slices are listed at most this often during a step."""
    timeout_s: Seconds = 2.0
    """Per list; a slower answer is "cannot tell" this time, so a slow API server never holds the step."""


class KubernetesSourceConfig(Frozen):
    """Pods being deleted, by list+watch of the API server (docs/platforms.md, Kubernetes)."""

    enabled: bool = False
    api_url: HttpUrl | None = None
    """The API server (also used for the leader Lease); None: in-cluster service account, else kubeconfig."""
    namespace: str = Field(default="default", min_length=1)
    label_selector: str = ""
    """Which pods are API servers, e.g. `app=api`; empty: every pod of the namespace."""
    pool: str = Field(default="kubernetes", min_length=1)
    """Disruption-budget pool of the pods (`disruption.pools`)."""
    agent_port: int = Field(default=9100, ge=1, le=65535)
    """The node agent sidecar listens on this port of the pod IP."""
    agent_token: TokenFile | None = Field(default=None, alias="agent_token_file")
    """Bearer token of the pods' agents; required when enabled. Never logged."""
    finalizer: Annotated[str, Field(pattern=FINALIZER_NAME)] = "drainctl.io/drain"
    hold: Literal["finalizer", "prestop"] = "finalizer"
    """finalizer: on every ready pod, removed on release. prestop: release the agent notice the pod's blocking
    preStop hook waits on (no finalizer is added)."""
    watch_timeout_s: Seconds = 300.0
    """Each watch request asks the server to end it after this long; it is then resumed."""
    request_timeout_s: Seconds = 10.0
    retry_max_s: Seconds = 10.0
    """Longest backoff between failed lists/watches."""
    overdue_s: Seconds = 60.0
    """A pod still carrying our finalizer this long after its deletionTimestamp is let go (never hold forever)."""
    endpoints: EndpointsConfig = EndpointsConfig()
    """What the out-of-rotation step observes (with `rotation.enabled`)."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> KubernetesSourceConfig:
        if self.enabled and self.agent_token is None:
            raise ValueError("agent_token_file is required when the kubernetes source is enabled")
        return self


class LeaderConfig(Frozen):
    """Only the holder of a Lease acts (`leases.py`); the API server is `sources.kubernetes.api_url`."""

    kind: Literal["lease"] = "lease"
    namespace: str = Field(min_length=1)
    name: str = Field(default="drainctl", min_length=1)
    identity: str | None = Field(default=None, min_length=1)
    """This replica's holderIdentity; None: the host name (the pod name) and a random suffix."""
    lease_duration_s: Seconds = 15.0
    """A standby takes over when the lease was not renewed for this long."""
    renew_s: Seconds = 2.0
    """How often the holder renews and standbys look; at most a third of lease_duration_s."""
    pod_label: Annotated[str, Field(pattern=LABEL_KEY)] | None = None
    """The leader sets this label to "true" on its own pod ("false" when it stops leading), for a Service
    that selects it (`labelling.py`); the pod is named by the environment's DRAINCTL_POD_NAME and
    DRAINCTL_POD_NAMESPACE (the downward API). None: no label."""

    @model_validator(mode="after")
    def _renew_fits(self) -> LeaderConfig:
        if self.renew_s * 3 > self.lease_duration_s:
            raise ValueError(
                f"renew_s ({self.renew_s:g}) must be at most a third of lease_duration_s ({self.lease_duration_s:g}): "
                "the holder must get several renewals in before it has to stop acting"
            )
        return self
