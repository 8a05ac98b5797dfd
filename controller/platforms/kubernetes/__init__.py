"""The Kubernetes platform: pods being deleted, held by a finalizer or a blocking preStop (docs/platforms.md).

`watching` lists and watches the pods (the source), `finalizers` and `pods` hold and release them, `leases` is
the Lease leader election, `api` the API client, `directory` the pods seen, `config` the `sources.kubernetes`
and `leader` sections and `parts` the wiring.
"""

from __future__ import annotations

from controller.core.extras import require
from controller.platforms.kubernetes.config import KubernetesSourceConfig, LeaderConfig
from controller.plugins import Context, Parts, Platform


def connect(settings: KubernetesSourceConfig, context: Context) -> Parts:
    # Imported here: parsing controller.yaml needs only the sections, not the API client (an extra).
    if not settings.enabled and not isinstance(context.leader, LeaderConfig):  # not used: no extra needed
        return Parts()
    require("kubernetes", extra="kubernetes", needed_for="sources.kubernetes")
    from controller.platforms.kubernetes.parts import connect as connect_parts

    return connect_parts(settings, context)


PLATFORM = Platform(name="kubernetes", settings=KubernetesSourceConfig, connect=connect, leader=LeaderConfig)
