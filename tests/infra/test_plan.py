"""`make plan STACK=...` (python -m infra.plan): a readable table and exit 0, or one line naming the key and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from controller.core.budget import Budget
from infra.policy.validators import RESOURCE_RULES
from tests.infra.conftest import REPO, stack_document


def _plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.plan", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_production_plan_prints_every_region_and_what_matters_and_exits_0() -> None:
    result = _plan("production")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for header in ("type", "name", "region", "key properties"):
        assert header in out
    for region in ("us-central1", "europe-west1", "asia-east1", "centralus", "northeurope", "eastasia"):
        assert region in out
    assert "graceful shutdown on, max 600 s" in out
    assert "terminate notification on PT10M" in out
    assert "idle 4 min tcpReset True" in out
    assert "timeout (WebSocket lifetime cap) 86400 s" in out
    assert "0 policy violations" in out
    assert "Traceback" not in result.stderr


def test_production_plan_shows_the_vpn_the_dns_forwarding_the_tls_termination_and_the_edge_bounds() -> None:
    result = _plan("production")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # rich folds long cells over lines
    assert "VpnGw2AZ RouteBased; active-active True; BGP True ASN 65515" in out
    assert "IKEv2 interface 0 -> Azure instance 0" in out and "IKEv2 interface 1 -> Azure instance 1" in out
    assert "BGP 169.254.21.1 -> 169.254.21.2 ASN 65515" in out
    assert "private forwarding postgres.database.azure.com. -> 10.20.64.4 (over the VPN)" in out
    assert "inbound DNS endpoint 10.20.64.4" in out
    assert "HA VPN, then VNet peering centralus -> northeurope" in out
    assert "TLS terminates at the LB (managed certificate)" in out
    assert "A stale socket is bounded by the server's idle timeout (37 s)" in out
    assert "health extension 1.0 http /readyz" in out
    assert "rule 443->4443 idle 4 min tcpReset True; probe Http /readyz port 4000" in out
    assert "HAProxy on each VM terminates TLS with the Key Vault certificate" in out
    assert "GCP on-call access: IAP TCP forwarding from 35.235.240.0/20 -> tcp:9300 on " in out
    assert "Azure on-call access: Bastion azure-centralus-bastion (Standard; tunneling True" in out


def test_bad_stack_config_is_one_line_naming_the_key_and_exit_2(tmp_path: Path) -> None:
    config = stack_document("staging")
    config["drainctl:budget"]["lb_idle_timeout_s"] = 8
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump({"config": config}))
    result = _plan("broken", "--stacks-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "drainctl:budget" in lines[0] and "lb_idle_timeout_s (8)" in lines[0]


def test_missing_stack_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _plan("nope", "--stacks-dir", str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Pulumi.nope.yaml" in result.stderr


def test_policy_config_carries_the_stacks_budget_for_every_rule() -> None:
    result = _plan("staging", "--policy-config")
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert set(config) == set(RESOURCE_RULES)
    budget = Budget.from_mapping(config["lb-timeouts"]["budget"])
    assert budget.platform_notice_s == stack_document("staging")["drainctl:budget"]["platform_notice_s"]
