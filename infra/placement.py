"""Where the database instances go and which one each region reads from.

Pure decisions, separate from the Pulumi resources so they can be checked (and tested) on their own:
the primary sits in the configured region of the database's cloud; every other region of that cloud gets a
read replica; a region of the other cloud reads from the nearest database region of the declared proximity
table (`infra/proximity.py`). In the primary's own region the read host is the primary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.errors import ConfigError
from infra import proximity
from infra.config import StackConfig


@dataclass(frozen=True)
class DatabasePlacement:
    cloud: str
    """`gcp` (Cloud SQL) or `azure` (Azure Database for PostgreSQL Flexible Server)."""
    primary_region: str
    replica_regions: tuple[str, ...]
    """Every region of the database's cloud but the primary's, each with its own read replica."""
    read_region: Mapping[str, str]
    """Every region of the stack (both clouds) -> the database region whose instance serves its reads."""

    @property
    def instance_regions(self) -> tuple[str, ...]:
        return (self.primary_region, *self.replica_regions)


def place_database(config: StackConfig) -> DatabasePlacement:
    db = config.database
    home = config.regions(db.cloud)
    other = "azure" if db.cloud == "gcp" else "gcp"
    read_region = {region: region for region in home}
    for region in config.regions(other):
        nearest = proximity.nearest(other, region, home)
        if nearest is None:  # config.parse refuses this first; kept so a caller never gets a half-filled map
            raise ConfigError(f"no {db.cloud} database region is declared near {region!r}")
        read_region[region] = nearest
    return DatabasePlacement(
        cloud=db.cloud,
        primary_region=db.primary_region,
        replica_regions=tuple(region for region in home if region != db.primary_region),
        read_region=read_region,
    )
