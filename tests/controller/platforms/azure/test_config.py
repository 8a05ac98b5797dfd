"""The `sources.azure` section and the GCP `discovery` section: mistakes are one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import parse_config
from controller.core.errors import ConfigError


def test_a_discovery_without_the_fleets_agent_token_is_refused_naming_the_key(tmp_path: Path) -> None:
    journal = str(tmp_path / "j.sqlite")
    azure = {"enabled": True, "scale_sets": [{"subscription": "s", "resource_group": "g", "name": "api"}]}
    gcp = {"enabled": True, "project": "p", "groups": [{"region": "r", "name": "api"}], "auth": "anonymous",
           "discovery": {"enabled": True}}
    with pytest.raises(ConfigError) as azure_error:
        parse_config({"journal": journal, "sources": {"azure": azure}})
    with pytest.raises(ConfigError) as gcp_error:
        parse_config({"journal": journal, "sources": {"gcp": gcp}})

    assert "sources.azure" in str(azure_error.value) and "agent_token_file" in str(azure_error.value)
    assert "sources.gcp.discovery" in str(gcp_error.value) and "agent_token_file" in str(gcp_error.value)


def test_the_agent_token_is_read_from_its_file_and_never_shown(tmp_path: Path) -> None:
    token = tmp_path / "agent-token"
    token.write_text("s3cret-agent-token\n")
    azure = {"enabled": True, "scale_sets": [{"subscription": "s", "resource_group": "g", "name": "api"}],
             "agent_token_file": str(token)}
    config = parse_config({"journal": str(tmp_path / "j.sqlite"), "sources": {"azure": azure}})

    assert config.sources.azure.agent_token.get_secret_value() == "s3cret-agent-token"
    assert "s3cret" not in repr(config)
    assert config.sources.azure.auth == "managed_identity", "the VM's identity by default"
