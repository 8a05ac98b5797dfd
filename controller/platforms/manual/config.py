"""The `sources.manual` section: whether operators may drain and reset through the API."""

from __future__ import annotations

from controller.core.settings import Frozen


class ManualSourceConfig(Frozen):
    enabled: bool = True
