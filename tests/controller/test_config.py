"""controller.yaml: a full example parses into frozen objects; every mistake is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.config import ControllerConfig, load_config
from controller.core.errors import ConfigError

TOKEN = "s3cret-agent-token"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "agent.token").write_text(TOKEN + "\n")
    (tmp_path / "api.token").write_text("api-token\n")
    return tmp_path


def _write(directory: Path, config: dict[str, object]) -> Path:
    path = directory / "controller.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _full(directory: Path) -> dict[str, object]:
    token = directory / "agent.token"
    return {
        "journal": str(directory / "journal.db"),
        "budget": {"drain_deadline_s": 20, "no_progress_window_s": 2},
        "prometheus": {"url": "http://127.0.0.1:9090", "query": 'sum(app_sockets{host="{instance}"})',
                       "timeout_s": 1.5},
        "disruption": {"default_max_draining": 2, "pools": {"web": {"max_draining": 1},
                                                             "edge": {"max_draining_percent": 50}}},
        "instances": {
            name: {"pool": pool, "agent_url": f"http://127.0.0.1:{port}", "agent_token_file": str(token)}
            for name, pool, port in (("A", "web", 9101), ("B", "edge", 9102), ("C", "edge", 9103))
        },
        "agents": {"timeout_s": 4},
        "api": {"listen": "127.0.0.1:0", "token_file": str(directory / "api.token")},
        "sources": {"local": {"poll_interval_s": 0.5}, "manual": {"enabled": False}},
        "engine": {"poll_interval_s": 0.25},
    }


def test_a_full_config_parses_into_frozen_typed_objects(files: Path) -> None:
    config = load_config(_write(files, _full(files)))
    assert config.budget.drain_deadline_s == 20 and config.budget.no_progress_window_s == 2
    assert config.prometheus is not None
    assert config.prometheus.query_for("A") == 'sum(app_sockets{host="A"})'
    assert config.instances["A"].agent_token.get_secret_value() == TOKEN
    assert config.slots("web") == 1 and config.slots("edge") == 1 and config.slots("other") == 2
    assert not config.sources.manual.enabled and config.sources.local.poll_interval_s == 0.5
    with pytest.raises(ValueError, match="frozen"):
        config.engine.poll_interval_s = 9  # type: ignore[misc]


def test_tokens_never_show_in_a_repr(files: Path) -> None:
    config = load_config(_write(files, _full(files)))
    assert TOKEN not in repr(config) and TOKEN not in str(config.instances["A"])


def test_the_minimal_config_is_a_journal(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, {"journal": str(tmp_path / "j.db")}))
    assert isinstance(config, ControllerConfig) and config.prometheus is None and config.instances == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"journl": "x"}, "journl: Extra inputs are not permitted"),
        ({"budget": {"drain_deadline_s": "soon"}}, "budget.drain_deadline_s: expected a number"),
        ({"budget": {"no_progress_window_s": 40}}, "no_progress_window_s (40) must be less than drain_deadline_s"),
        ({"prometheus": {"url": "ftp://x"}}, "prometheus.url: expected an http:// or https:// URL"),
        ({"prometheus": {"url": "http://p:9090", "query": "up"}}, "prometheus: query must contain {instance}"),
        ({"prometheus": {"url": "http://p:9090"}}, "prometheus.query: Field required"),
        ({"disruption": {"pools": {"web": {}}}}, "disruption.pools.web: give exactly one of"),
        ({"disruption": {"default_max_draining": 0}}, "disruption.default_max_draining: Input should be greater"),
        ({"instances": {"A": {"agent_url": "http://a:1", "agent_token_file": "/x"}}},
         "instances.A.pool: Field required"),
        ({"instances": {"A": {"pool": "w", "agent_url": "http://a:1", "agent_token_file": "/nonexistent/t"}}},
         "instances.A.agent_token_file: cannot read '/nonexistent/t'"),
        ({"instances": {"A": {"pool": "w", "agent_url": "http://a:1", "agent_token": "inline"}}},
         "instances.A.agent_token_file: Field required"),
        ({"api": {"listen": "nowhere", "token_file": "/x"}}, "api.listen: expected HOST:PORT"),
        ({"engine": {"poll_interval_s": 0}}, "engine.poll_interval_s: must be a positive number"),
    ],
)
def test_a_mistake_is_one_line_naming_the_file_and_key(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = _write(tmp_path, {"journal": str(tmp_path / "j.db"), **change})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("journal: x\ninstances: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line \d+\)"):
        load_config(path)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_config(tmp_path / "absent.yaml")


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping of settings, got list"):
        load_config(path)
