"""A missing optional dependency is one line naming the extra to install, not an ImportError traceback."""

from __future__ import annotations

import pytest

from controller.core.errors import ConfigError
from controller.core.extras import require


def test_a_missing_extra_names_what_to_install() -> None:
    with pytest.raises(ConfigError) as refused:
        require("drainctl_no_such_package.sub", extra="kubernetes", needed_for="sources.kubernetes")
    message = str(refused.value)
    assert "\n" not in message and "pip install 'drainctl[kubernetes]'" in message
    assert message.startswith("sources.kubernetes needs the Python package 'drainctl_no_such_package.sub'")


def test_an_installed_extra_passes() -> None:
    require("yaml", extra="base", needed_for="the config")
