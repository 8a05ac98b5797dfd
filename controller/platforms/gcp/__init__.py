"""The GCP platform: regional managed instance groups (docs/platforms.md, GCP).

`watching` polls the Compute API's managed instances for a pending deletion (the source), `releasing` tells
the instance's agent that its drain is done so the guest's shutdown hook returns (the release), `compute` is
the Compute API client, `config` the `sources.gcp` section and `parts` the wiring.
"""

from __future__ import annotations

from controller.core.extras import require
from controller.platforms.gcp.config import GcpSourceConfig
from controller.plugins import Context, Parts, Platform


def connect(settings: GcpSourceConfig, context: Context) -> Parts:
    # Imported here: parsing controller.yaml (and the CLI's start) needs only the section, not the API client.
    if not settings.enabled:  # a controller of the other cloud: its extra need not be installed
        return Parts()
    require("google.auth", extra="gcp", needed_for="sources.gcp")
    from controller.platforms.gcp.parts import connect as connect_parts

    return connect_parts(settings, context)


PLATFORM = Platform(name="gcp", settings=GcpSourceConfig, connect=connect)
