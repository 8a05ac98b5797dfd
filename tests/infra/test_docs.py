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
