"""One package per platform, each behind the contract of `controller/plugins.py` (DESIGN.md §8).

This is the registry: the platforms a controller can use, in the order their sources start. Adding a platform is
a package beside these and one entry here; nothing else names it (`controller/app.py` loops over `PLATFORMS`).
"""

from __future__ import annotations

from controller.platforms import azure, gcp, kubernetes, manual, notices, postgres
from controller.plugins import Platform

PLATFORMS: tuple[Platform, ...] = (
    manual.PLATFORM, notices.PLATFORM, gcp.PLATFORM, kubernetes.PLATFORM, azure.PLATFORM, postgres.PLATFORM,
)
