"""The manual platform: an operator's `drainctl drain` / `drainctl reset` through the controller's API.

No platform holds the instance, so there is nothing to release; the operator intents themselves (drain with a
deadline and a rate, reset now) are core rules (`controller/core/operator.py`) because the engine shapes them.
This package only says whether operators may use them (`sources.manual.enabled`).
"""

from __future__ import annotations

from controller.core.operator import SOURCE
from controller.core.ports import NothingToRelease
from controller.platforms.manual.config import ManualSourceConfig
from controller.plugins import Context, Parts, Platform


def connect(settings: ManualSourceConfig, context: Context) -> Parts:
    return Parts(releasers={SOURCE: NothingToRelease()}, operator_drains=settings.enabled)


PLATFORM = Platform(name="manual", settings=ManualSourceConfig, connect=connect)
