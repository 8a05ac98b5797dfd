"""Every /metrics this project serves passes `promtool check metrics` (Prometheus's lint: base units, `_total`
counters, no abbreviated units), scraped from real processes: a reference server, its node agent and a
controller that has just drained and released a platform notice (so the histograms hold samples).

The same run shows the operations metrics the alert rules read: `drainctl_build_info`,
`drainctl_agent_up{host}`, `drainctl_release_margin_seconds` and `drainctl_journal_errors_total`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx

from testbed.harness import Fleet
from tests.e2e.programs import need
from tests.support import TEST_BUDGET, wait_until


def _lint(text: str) -> str:
    """promtool's complaints about an exposition (empty when it passes)."""
    result = subprocess.run([need("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60, check=False)
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_every_exposition_passes_promtool_and_carries_the_operations_metrics(tmp_path: Path) -> None:
    need("promtool")
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet:
        server = fleet.start_server("A")
        agent = fleet.start_agent(server)
        controller = fleet.start_controller(fleet.controller_config([agent], local_poll_interval_s=0.25))
        not_after = time.time() + TEST_BUDGET.platform_notice_s
        agent.post_notice("n-1", "terminate", not_after)
        wait_until(lambda: controller.metric("drainctl_release_margin_seconds_count") == 1,
                   what="the notice drained and released")
        texts = {
            "controller": controller.metrics_text(),
            "agent": agent.metrics_text(),
            "server": httpx.get(f"{server.http_url}/metrics", timeout=10).text,
        }
        assert controller.metric("drainctl_agent_up", {"host": "A"}) == 1
        assert controller.metric("drainctl_build_info") == 1
        assert controller.metric("drainctl_journal_errors_total") == 0
        margin = controller.metric("drainctl_release_margin_seconds_sum")
    assert 0 < margin <= TEST_BUDGET.platform_notice_s, "released before the deadline, by this much"
    assert "drainctl_agent_build_info{" in texts["agent"]
    for name, text in texts.items():
        assert _lint(text) == "", f"{name}'s /metrics: {_lint(text)}"
