"""The shipped alert rules (deploy/prometheus/): valid for Prometheus, each alert fired by its recorded series
in the unit tests and quiet on a healthy one, each with a runbook section that exists.

`promtool` comes with the Debian package `prometheus` (`make setup` installs it): outside CI its absence skips
these tests, in CI it fails them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.e2e.programs import need
from tests.support import REPO_ROOT

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES = RULES_DIR / "drainctl.rules.yml"
RULE_TESTS = RULES_DIR / "drainctl.rules.test.yml"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120,
                          check=False, cwd=RULES_DIR)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_the_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_in_a_unit_test_and_is_quiet_in_another() -> None:
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
             for case in test["alert_rule_test"]]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case.get("exp_alerts") for case in mine), f"{alert['alert']}: no test fires it"
        assert any(not case.get("exp_alerts") for case in mine), f"{alert['alert']}: no test where it is quiet"


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: with the agent alert's threshold broken, promtool reports that alert."""
    broken = RULES.read_text(encoding="utf-8").replace("drainctl_agent_up == 0", "drainctl_agent_up == 2")
    (tmp_path / RULES.name).write_text(broken, encoding="utf-8")
    (tmp_path / RULE_TESTS.name).write_text(RULE_TESTS.read_text(encoding="utf-8"), encoding="utf-8")
    result = _promtool("test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0 and "DrainctlAgentUnreachable" in result.stdout + result.stderr


def test_every_alert_links_a_runbook_section_that_exists() -> None:
    anchors = {_anchor(line) for line in RUNBOOK.read_text(encoding="utf-8").splitlines() if line.startswith("#")}
    for alert in _alerts():
        annotations = alert["annotations"]
        assert isinstance(annotations, dict) and annotations.get("summary"), f"{alert['alert']}: no summary"
        path, _, anchor = str(annotations["runbook_url"]).partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, f"{alert['alert']}: {annotations['runbook_url']}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
