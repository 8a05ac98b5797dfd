"""Whether each instance's node agent answers the controller: `drainctl_agent_up{host}`.

Set where the controller talks to an agent (every call of its `AgentClient`: the notices poll at rest, the
drain, count and reset during a drain): 1 when the agent answered at all (any HTTP status: it is up), 0 when
the connection failed or timed out. An alert on `drainctl_agent_up == 0` (deploy/prometheus/) pages before a
drain needs that host. The label is `host`, the drainctl instance name: `instance` is the label Prometheus gives
every scraped target, and an exposed `instance` would be renamed `exported_instance` at the scrape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

Observer = Callable[[bool], None]
"""Called after each request to one agent: True when it answered, False when it could not be reached."""


class AgentReachability:
    """The gauge of every agent's reachability, in the controller's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "drainctl_agent_up", "1 when the instance's node agent answered the last request, 0 when unreachable.",
            ["host"], registry=registry,
        )

    def observer(self, instance: str) -> Observer:
        """The observer for one instance's agent client."""
        gauge = self.up.labels(instance)
        return lambda answered: gauge.set(1 if answered else 0)

    def forget(self, instance: str) -> None:
        """The instance is gone (a deleted pod): drop its series rather than leave a stale 0 or 1."""
        with contextlib.suppress(KeyError):
            self.up.remove(instance)
