"""agent.yaml: parsed once into frozen objects; a mistake is one line naming the key, and exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from controller.agent.config import load_settings
from controller.core.errors import ConfigError
from tests.controller.agent.conftest import DRAINCTL, TOKEN, agent_config
from tests.support import APP_TOKEN


def _write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _valid(tmp_path: Path) -> dict[str, Any]:
    return agent_config(tmp_path, service_port=4000, drain_url="http://127.0.0.1:4001/admin/drain")


def test_a_valid_config_is_parsed_with_its_tokens_and_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, {**_valid(tmp_path), "listen": "[::1]:0"}))

    assert (settings.token, settings.app_token) == (TOKEN, APP_TOKEN)
    assert (settings.config.listen_host, settings.config.listen_port) == ("::1", 0)
    assert settings.config.fallback.grace_s == 5.0 and settings.config.fallback.no_progress_window_s == 3.0
    assert TOKEN not in repr(settings), "tokens must never show up in logs or reprs"
    with pytest.raises(pydantic.ValidationError):
        settings.config.fallback.grace_s = 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fallback": {"grace_s": "soon"}}, "fallback.grace_s: Input should be a valid number"),
        ({"fallback": {"grace_s": -1}}, "fallback.grace_s: Input should be greater than or equal to 0"),
        ({"service_port": 70000}, "service_port: Input should be less than or equal to 65535"),
        ({"listen": "9100"}, "listen: expected HOST:PORT, got '9100'"),
        ({"service_address": "localhost"}, "service_address: "),
        ({"typo": 1}, "typo: Extra inputs are not permitted"),
        ({"app": {"drain_url": "ftp://x"}}, "app.drain_url: expected an http:// or https:// URL"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    config = _valid(tmp_path)
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    path = _write(tmp_path, config)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_an_unreadable_token_file_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, {**_valid(tmp_path), "token_file": str(tmp_path / "missing.token")})

    with pytest.raises(ConfigError, match=r"token_file: cannot read .*missing.token.*No such file"):
        load_settings(path)


def test_the_cli_reports_a_bad_config_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    config = _valid(tmp_path)
    config["fallback"] = {"grace_s": "soon"}
    path = _write(tmp_path, config)

    result = subprocess.run([DRAINCTL, "agent", "--config", str(path)], capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stderr.count("\n")) == (2, 1)
    assert result.stderr.startswith(f"drainctl: {path}: fallback.grace_s: Input should be a valid number")
    assert result.stdout == ""


def test_the_cli_reports_invalid_yaml_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("listen: [unclosed\n")

    result = subprocess.run([DRAINCTL, "agent", "--config", str(path)], capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stderr.count("\n")) == (2, 1)
    assert "not valid YAML" in result.stderr
