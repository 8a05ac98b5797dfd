"""`sources.kubernetes` and `leader` in controller.yaml: mistakes are one line naming the key, and a controller
that cannot find any API server says so in one line with exit code 2 (no traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import parse_config
from controller.core.errors import ConfigError
from testbed.harness.fleet import DRAINCTL


def _config(tmp_path: Path, kubernetes: dict[str, Any]) -> dict[str, Any]:
    token = tmp_path / "agent.token"
    token.write_text("k8s-agent-secret\n")
    section = {"enabled": True, "agent_token_file": str(token), **kubernetes}
    return {"journal": str(tmp_path / "j.sqlite"), "sources": {"kubernetes": section}}


@pytest.mark.parametrize(
    ("kubernetes", "message"),
    [
        ({"agent_token_file": None}, "sources.kubernetes: agent_token_file is required when the kubernetes source"),
        ({"hold": "sidecar"}, "sources.kubernetes.hold: Input should be 'finalizer' or 'prestop'"),
        ({"finalizer": "no-domain"}, "sources.kubernetes.finalizer: String should match pattern"),
        ({"api_url": "ftp://x"}, "sources.kubernetes.api_url: expected an http:// or https:// URL"),
        ({"agent_port": 0}, "sources.kubernetes.agent_port: Input should be greater than or equal to 1"),
        ({"watch_timeout": 5}, "sources.kubernetes.watch_timeout: Extra inputs are not permitted"),
    ],
)
def test_kubernetes_source_mistakes_are_one_line_naming_the_key(
    tmp_path: Path, kubernetes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config(tmp_path, kubernetes))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_valid_kubernetes_section_and_lease_parse_to_their_defaults(tmp_path: Path) -> None:
    raw = _config(tmp_path, {"namespace": "api", "label_selector": "app=api"})
    raw["leader"] = {"kind": "lease", "namespace": "api"}
    config = parse_config(raw)
    kube, leader = config.sources.kubernetes, config.leader
    assert (kube.hold, kube.finalizer, kube.agent_port, kube.pool) == ("finalizer", "drainctl.io/drain", 9100,
                                                                        "kubernetes")
    assert kube.agent_token is not None and kube.agent_token.get_secret_value() == "k8s-agent-secret"
    assert "k8s-agent-secret" not in repr(config), "the token must never show in a repr or a log line"
    assert leader is not None and (leader.name, leader.lease_duration_s, leader.renew_s) == ("drainctl", 15.0, 2.0)


def test_drainctl_run_without_any_reachable_cluster_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    raw = _config(tmp_path, {})
    (tmp_path / "api.token").write_text("a\n")
    raw["api"] = {"listen": "127.0.0.1:0", "token_file": str(tmp_path / "api.token")}
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    env["KUBECONFIG"] = str(tmp_path / "no-such-kubeconfig")
    result = subprocess.run([*DRAINCTL, "run", "--config", str(path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drainctl: kubernetes: no api_url given, not in a cluster")
    assert result.stdout == ""
