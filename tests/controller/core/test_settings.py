"""The one HOST:PORT type and the one token-file reader (controller/core/settings.py), as a config file's
author meets them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.core.errors import ConfigError
from controller.core.settings import Frozen, HostPort, HostPortField, read_token


class Listening(Frozen):
    listen: HostPortField = HostPort("127.0.0.1", 9300)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9300", HostPort("127.0.0.1", 9300)),
        ("[::1]:9300", HostPort("::1", 9300)),
        ("controller.internal:0", HostPort("controller.internal", 0)),
        (":9300", HostPort("", 9300)),
    ],
)
def test_host_port_parses_ipv4_bracketed_ipv6_names_and_every_interface(text: str, address: HostPort) -> None:
    assert HostPort.parse(text) == address
    assert str(address) == text


@pytest.mark.parametrize("text", ["9300", "localhost", "localhost:", "localhost:http", "localhost:65536", "[::1]"])
def test_anything_else_is_refused_naming_what_was_given(text: str) -> None:
    with pytest.raises(ValueError, match=f"expected HOST:PORT, got '{text}'".replace("[", r"\[").replace("]", r"\]")):
        HostPort.parse(text)


def test_a_config_key_holds_a_host_port_and_writes_it_back_as_text() -> None:
    assert Listening.model_validate({"listen": "[::1]:0"}).listen == HostPort("::1", 0)
    assert Listening().model_dump() == {"listen": "127.0.0.1:9300"}
    with pytest.raises(ValidationError, match="expected HOST:PORT, got 9300"):
        Listening.model_validate({"listen": 9300})


def test_a_token_file_is_read_stripped(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("  s3cret\n", encoding="utf-8")
    assert read_token(tmp_path / "t") == "s3cret"


def test_an_unusable_token_file_is_a_config_error_naming_the_key_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^--token-file: '{tmp_path}/empty' is empty$"):
        read_token(tmp_path / "empty", where="--token-file")
    with pytest.raises(ConfigError, match=rf"^agent.yaml: token_file: cannot read '{tmp_path}/nope': No such file"):
        read_token(tmp_path / "nope", where="agent.yaml: token_file")
