"""The platforms a controller can use, in the order their sources start. Adding a platform: one line here."""

from __future__ import annotations

from controller.platforms import gcp, kubernetes, manual, notices
from controller.platforms.base import Platform

PLATFORMS: tuple[Platform, ...] = (manual.PLATFORM, notices.PLATFORM, gcp.PLATFORM, kubernetes.PLATFORM)
