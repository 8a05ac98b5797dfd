"""What an operator reads in the logs: the drain on every line of a drain, JSON or text, no doubled time under
journald, and no request URL from httpx even at debug level."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core import logs
from controller.core.logs import LogConfig, LogFormat, LogLevel


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("httpx").level)
    out = io.StringIO()
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.getLogger("httpx").setLevel(saved[2])


def test_json_lines_carry_the_drain_bound_in_each_task_and_httpx_stays_quiet(stream: io.StringIO) -> None:
    logs.configure(LogConfig(format=LogFormat.JSON, level=LogLevel.DEBUG), stream=stream)
    log = logging.getLogger("drainctl.test")

    async def pass_of(drain_id: int, instance: str) -> None:
        with logs.bound(drain_id=drain_id, instance=instance):
            await asyncio.sleep(0)
            log.info("step of %s", instance)

    async def both() -> None:
        await asyncio.gather(pass_of(1, "A"), pass_of(2, "B"))

    asyncio.run(both())
    log.info("outside")
    logging.getLogger("httpx").info("HTTP Request: POST https://hooks.example/secret")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"] == "drainctl.test"]
    assert [(line["message"], line.get("drain_id"), line.get("instance")) for line in ours] == [
        ("step of A", 1, "A"), ("step of B", 2, "B"), ("outside", None, None)]
    assert ours[0]["time"].endswith("Z") and ours[0]["level"] == "INFO"
    assert "secret" not in stream.getvalue()


def test_text_lines_name_the_drain_and_leave_the_time_to_journald(tmp_path: Path) -> None:
    record = logging.LogRecord("drainctl.engine", logging.INFO, __file__, 1, "A: forcing", None, None)
    record.__dict__["drainctl"] = {"drain_id": 3, "instance": "A"}
    with (tmp_path / "journal-stream").open("w") as journal, (tmp_path / "other").open("w") as other:
        status = os.fstat(journal.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        assert logs.under_journald(journal, environ) and not logs.under_journald(other, environ)
        assert not logs.under_journald(journal, {})
    plain = logs.formatter(LogFormat.TEXT).format(record)
    journald = logs.formatter(LogFormat.TEXT, journald=True).format(record)
    assert plain.endswith("INFO drainctl.engine: A: forcing [drain_id=3 instance=A]") and plain[:4].isdigit()
    assert journald == "INFO drainctl.engine: A: forcing [drain_id=3 instance=A]"
