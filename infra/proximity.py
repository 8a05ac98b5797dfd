"""Which region of the other cloud is nearest: the declared table behind cross-cloud read replicas.

A region of the cloud that does not host the database reads from the nearest region that does. "Nearest" is a
reviewed declaration, not a computation: each entry lists the other cloud's regions in order of preference, and
the first one the stack deploys wins. Locations are the vendors' published data-centre metros:

- GCP: https://cloud.google.com/about/locations
- Azure: https://learn.microsoft.com/azure/reliability/regions-list

To add a region, add its row here (and to docs/infra.md's proximity table); a stack whose region has no row, or
whose preferred regions are all missing from the stack, is refused with the key that names the region.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Cloud = str
"""`"gcp"` or `"azure"`."""

NEAREST: Mapping[Cloud, Mapping[str, tuple[str, ...]]] = {
    # GCP region -> Azure regions, nearest first.
    "gcp": {
        "us-central1": ("centralus", "northcentralus", "eastus2", "eastus"),  # Council Bluffs, Iowa -> Des Moines
        "us-east1": ("eastus", "eastus2", "centralus"),  # Moncks Corner, S. Carolina -> Virginia
        "us-east4": ("eastus", "eastus2", "centralus"),  # Ashburn, Virginia -> Virginia
        "us-west1": ("westus2", "westus", "centralus"),  # The Dalles, Oregon -> Washington
        "europe-west1": ("westeurope", "northeurope", "uksouth"),  # St. Ghislain, Belgium -> Netherlands, Dublin
        "europe-west2": ("uksouth", "northeurope", "westeurope"),  # London -> London, Dublin
        "europe-west4": ("westeurope", "northeurope", "germanywestcentral"),  # Eemshaven, NL -> Netherlands
        "asia-east1": ("eastasia", "southeastasia", "japaneast"),  # Changhua, Taiwan -> Hong Kong
        "asia-east2": ("eastasia", "southeastasia"),  # Hong Kong -> Hong Kong
        "asia-southeast1": ("southeastasia", "eastasia"),  # Singapore -> Singapore
    },
    # Azure region -> GCP regions, nearest first.
    "azure": {
        "centralus": ("us-central1", "us-east4", "us-east1"),  # Des Moines -> Council Bluffs
        "eastus": ("us-east4", "us-east1", "us-central1"),  # Virginia -> Ashburn
        "eastus2": ("us-east4", "us-east1", "us-central1"),  # Virginia -> Ashburn
        "westus2": ("us-west1", "us-central1"),  # Washington -> Oregon
        "northeurope": ("europe-west2", "europe-west1", "europe-west4"),  # Dublin -> London, Belgium
        "westeurope": ("europe-west4", "europe-west1", "europe-west2"),  # Netherlands -> Eemshaven
        "uksouth": ("europe-west2", "europe-west1"),  # London -> London
        "eastasia": ("asia-east2", "asia-east1", "asia-southeast1"),  # Hong Kong -> Hong Kong, Taiwan
        "southeastasia": ("asia-southeast1", "asia-east2", "asia-east1"),  # Singapore -> Singapore
    },
}


def nearest(cloud: Cloud, region: str, candidates: Iterable[str]) -> str | None:
    """The first of `region`'s preferred other-cloud regions that is among `candidates`, or None."""
    available = set(candidates)
    for preferred in NEAREST.get(cloud, {}).get(region, ()):
        if preferred in available:
            return preferred
    return None
