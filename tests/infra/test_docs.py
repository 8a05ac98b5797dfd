"""docs/infra.md's proximity table is the one the programs use."""

from __future__ import annotations

from infra.proximity import NEAREST
from tests.infra.conftest import REPO


def test_docs_proximity_table_matches_the_code() -> None:
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in (REPO / "docs" / "infra.md").read_text().splitlines()
        if line.startswith(("| gcp | `", "| azure | `"))
    }
    declared = {
        (cloud, f"`{region}`", ", ".join(preferred))
        for cloud, table in NEAREST.items()
        for region, preferred in table.items()
    }
    assert rows == declared


def test_docs_state_the_agents_unit_order_as_the_unit_has_it() -> None:
    text = (REPO / "docs" / "infra.md").read_text()
    unit = (REPO / "deploy" / "systemd" / "drainctl-agent.service").read_text()
    assert "After=network-online.target drainctl-api.service" in unit
    assert "the agent is ordered `After=` the API server" in text
    assert "ordered `Before=`" not in text


def test_docs_say_what_bounds_a_stale_socket_on_gcp() -> None:
    text = (REPO / "docs" / "infra.md").read_text()
    assert "What bounds a stale socket on GCP" in text
    for fact in ("86,400 s", "`server_idle_timeout_s` (37 s)", "`heartbeat_timeout_s` (35 s)"):
        assert fact in text
