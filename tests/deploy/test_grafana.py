"""The shipped Grafana dashboard (deploy/grafana/drainctl.json): a dashboard Grafana imports (the fields it
needs, panels on its 24-column grid that do not overlap, one Prometheus data source variable), showing what the
issue asks for, and every query names only metrics the code exports (or the listed ones of other branches)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.deploy.exported import OTHER_BRANCHES, exported, named_in
from tests.support import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "drainctl.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "drainctl.rules.yml"
PANEL_TYPES = {"row", "timeseries", "stat", "table", "bargauge", "heatmap", "state-timeline"}
SHOWN = {
    "drains by outcome": "drainctl_drains_total", "phases over time": "drainctl_instances",
    "sockets remaining per draining instance": "drainctl_draining_sockets",
    "release margin": "drainctl_release_margin_seconds_bucket",
    "sources' health": "drainctl_source_last_success_timestamp_seconds", "leader": "drainctl_leader",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_has_what_grafana_needs_to_import_it(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "drainctl" and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard["id"] is None, "an exported dashboard carries no database id"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES and panel["title"], panel
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy") and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            refs = [target["refId"] for target in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]


def test_no_two_panels_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_the_dashboard_shows_what_on_call_asked_for(dashboard: dict[str, Any]) -> None:
    named = set().union(*(named_in(query) for query in _queries(dashboard)))
    for what, metric in SHOWN.items():
        assert metric in named, f"no panel shows {what} ({metric})"


def test_every_query_and_rule_names_an_exported_metric(dashboard: dict[str, Any]) -> None:
    known = exported() | OTHER_BRANCHES
    rules = [rule["expr"] for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
             for rule in group["rules"]]
    for expression in [*_queries(dashboard), *rules]:
        unknown = named_in(expression) - known
        assert not unknown, f"{expression!r} names metrics nothing exports: {sorted(unknown)}"
