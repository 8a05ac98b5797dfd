"""The Azure platform on the controller: the scale sets' VMs as the inventory (docs/platforms.md, Azure).

Discovery only, for now: `arm` is the Azure Resource Manager client (a token from the VM's managed identity
through azure-identity), `discovering` turns the scale sets' VMs and their NICs into the fleet's members, `config`
is the `sources.azure` section and `parts` the wiring. The Scheduled Events path stays on the host (the agent's
`watchers/azure.py`), reached through the notices platform.
"""

from __future__ import annotations

from controller.core.extras import require
from controller.platforms.azure.config import AzureSourceConfig
from controller.plugins import Context, Parts, Platform


def connect(settings: AzureSourceConfig, context: Context) -> Parts:
    # Imported here: parsing controller.yaml (and the CLI's start) needs only the section, not azure-identity.
    if not settings.enabled:  # a controller of the other cloud: its extra need not be installed
        return Parts()
    require("azure.identity", extra="azure", needed_for="sources.azure")
    from controller.platforms.azure.parts import connect as connect_parts

    return connect_parts(settings, context)


PLATFORM = Platform(name="azure", settings=AzureSourceConfig, connect=connect)
