"""The `leader:` section of kind `postgres`: a lease row in the journal's own database (`leasing.py`).

    journal: postgresql://drainctl@db.internal:5432/drainctl
    journal_password_file: /etc/drainctl/journal.password
    leader: {kind: postgres, lease_s: 15, renew_s: 2, advertise_url: http://10.0.0.7:9300}

`sources.postgres` has nothing to set: Postgres is not a source of events, this platform only elects.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, model_validator

from controller.core.settings import Frozen, HttpUrl, Seconds


class PostgresSourceConfig(Frozen):
    """Empty on purpose (the platform contributes only the leader elector)."""


class PostgresLeaderConfig(Frozen):
    """Only the holder of the journal database's lease row acts; its epoch fences every journal write."""

    kind: Literal["postgres"] = "postgres"
    name: str = Field(default="drainctl", min_length=1)
    """The lease row's name: controllers sharing a journal and this name elect one leader."""
    holder: str = Field(default_factory=socket.gethostname, min_length=1)
    """This controller's name in the lease row (default: the host name); unique among the pair."""
    lease_s: Seconds = 15.0
    """A standby takes the lease when the holder has not renewed it for this long (by the database's clock)."""
    renew_s: Seconds = 2.0
    """How often the holder renews and standbys look; at most a third of lease_s."""
    advertise_url: HttpUrl | None = None
    """This controller's API as the other one should name it to clients (`drainctl` on-call, a load balancer)."""

    @model_validator(mode="after")
    def _renew_fits(self) -> PostgresLeaderConfig:
        if self.renew_s * 3 > self.lease_s:
            raise ValueError(
                f"renew_s ({self.renew_s:g}) must be at most a third of lease_s ({self.lease_s:g}): "
                "the holder must get several renewals in before it has to stop acting"
            )
        return self

    @property
    def renew_deadline_s(self) -> float:
        """The holder stops acting when its last successful renewal began this long ago."""
        return self.lease_s * 2.0 / 3.0
