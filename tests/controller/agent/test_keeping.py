"""The notices on disk: what a restarted agent reads back, and what it does with a damaged file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from controller.agent.keeping import NoticeFile
from controller.agent.notices import Notice, NoticeState


def test_notices_round_trip_and_old_released_ones_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state" / "notices.json"
    store = NoticeFile(path, keep_released_s=3600, clock=lambda: 10_000.0)
    open_ = Notice("E-1", "terminate", 10_600.0, 9_990.0, source="azure", grace_s=0.0)
    open_.start_drain("controller", at=9_995.0)
    recent = Notice("E-2", "reboot", 10_600.0, 9_000.0, state=NoticeState.RELEASED, released_at=9_500.0,
                    released_by="agent")
    old = Notice("E-3", "reboot", 5_000.0, 4_000.0, state=NoticeState.RELEASED, released_at=4_500.0)

    store.save([open_, recent, old])

    assert [n.id for n in store.load()] == ["E-1", "E-2"]
    loaded = store.load()[0]
    assert loaded == open_
    assert not list(path.parent.glob(".notices.json.*")), "no temporary file is left behind"


def test_a_damaged_file_is_set_aside_and_the_agent_starts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "notices.json"
    path.write_text('{"version": 1, "notices": [{"id": "E-1"')
    caplog.set_level(logging.ERROR)

    assert NoticeFile(path).load() == []

    assert not path.exists() and (tmp_path / "notices.json.corrupt").exists()
    assert "malformed" in caplog.text
    NoticeFile(path).save([Notice("E-9", "terminate", 1.0, 0.0)])
    assert json.loads(path.read_text())["notices"][0]["id"] == "E-9"
