"""Group commit of pushes: a storm is journaled in a few commits, and no push is answered before its event is
durable; a commit that fails takes none of its batch (all answered 503, nothing half-kept, retries start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from controller.api.pushes import Pushes
from controller.api.routes import build_app
from controller.core.errors import JournalError
from controller.hosts.fleet import Fleet
from controller.hosts.pooling import AgentPool
from controller.journal.sqlite import SqliteJournal
from tests.controller.engine.fakes import FakeClock, FakeHost, World, make_world
from tests.support.serving import serving
from tests.support.tasks import async_test

API, PUSH = "api-token", "push-token"
STORM = 200


def _push(instance: str) -> dict[str, object]:
    return {"instance": instance, "agent_url": "http://10.0.0.7:9100",
            "notice": {"id": f"n-{instance}", "kind": "terminate", "not_after": 2e9}}


def _journaled(path: Path, instance: str) -> bool:
    """Whether another connection (another process, after a crash) finds the instance's event in the file."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT 1 FROM events WHERE instance = ?", (instance,)).fetchone() is not None


class FailingCommits(SqliteJournal):
    """A journal whose batch commits fail while `failing` (a full disk, an I/O error at COMMIT)."""

    failing = True

    @contextmanager
    def batch(self) -> Iterator[None]:
        if not self.failing:
            with super().batch():
                yield
            return
        try:
            with super().batch():
                yield
                raise _Abort
        except _Abort:
            raise JournalError("journal: batch commit failed: disk I/O error") from None


class _Abort(Exception):
    pass


@asynccontextmanager
async def _api(world: World) -> AsyncIterator[tuple[httpx.AsyncClient, Pushes]]:
    pool = AgentPool()
    agents = Fleet(world.engine.inventory, {}, pool=pool, token=None, timeout_s=1)
    pushes = Pushes(PUSH, world.engine, agents)
    app = build_app(world.engine, API, pushes=pushes)
    limits = httpx.Limits(max_connections=STORM)
    async with serving(app) as url, httpx.AsyncClient(base_url=url, trust_env=False, limits=limits) as http:
        yield http, pushes
    await pool.aclose()
    world.store.close()


def _world(tmp_path: Path, store: SqliteJournal | None = None) -> World:
    clock = FakeClock()
    hosts = {f"vm-{i:03d}": FakeHost(clock) for i in range(STORM)}
    return make_world(tmp_path / "journal.sqlite", hosts=hosts, clock=clock, store=store)


@async_test
async def test_a_storm_of_pushes_is_journaled_in_few_commits_and_each_is_durable_when_answered(
    tmp_path: Path,
) -> None:
    world = _world(tmp_path)
    path = tmp_path / "journal.sqlite"
    async with _api(world) as (http, pushes):
        async def push(instance: str) -> tuple[int, bool]:
            answer = await http.post("/v1/pushes", json=_push(instance), headers={"Authorization": f"Bearer {PUSH}"})
            return answer.status_code, _journaled(path, instance)

        answers = await asyncio.gather(*(push(name) for name in world.hosts))
        batches = list(pushes.intake.batches)
    assert {status for status, _ in answers} == {202}
    assert all(durable for _, durable in answers), "a push was answered before its event was in the file"
    assert sum(batches) == STORM and len(batches) < STORM, f"not grouped: {len(batches)} commits for {STORM}"
    assert len({d.instance for d in SqliteJournal(path).drains(limit=1000)}) == STORM


@async_test
async def test_a_batch_whose_commit_fails_takes_none_of_its_pushes_and_their_retries_start_them(
    tmp_path: Path,
) -> None:
    store = FailingCommits(tmp_path / "journal.sqlite")
    world = _world(tmp_path, store)
    names = list(world.hosts)[:20]
    async with _api(world) as (http, _):
        headers = {"Authorization": f"Bearer {PUSH}"}
        failed = await asyncio.gather(*(http.post("/v1/pushes", json=_push(n), headers=headers) for n in names))
        kept = [name for name in names if world.engine.get(name) is not None]
        written = [name for name in names if _journaled(tmp_path / "journal.sqlite", name)]
        store.failing = False
        retried = await asyncio.gather(*(http.post("/v1/pushes", json=_push(n), headers=headers) for n in names))
    assert {a.status_code for a in failed} == {503}, "a push whose commit failed must not be answered 202"
    assert kept == [], "an episode of the failed batch stayed in memory though the journal has none"
    assert written == [], "nothing of the failed batch may be in the file"
    assert [a.json()["disposition"] for a in retried] == ["started"] * len(names), "retries are new, not duplicates"


def _controller_config(tmp_path: Path, port: int) -> Path:
    for name, text in (("api.token", API), ("push.token", PUSH), ("agent.token", "agent-token")):
        (tmp_path / name).write_text(text)
    config = {
        "journal": str(tmp_path / "journal.sqlite"),
        "api": {"listen": f"127.0.0.1:{port}", "token_file": str(tmp_path / "api.token"),
                "push_token_file": str(tmp_path / "push.token")},
        "agents": {"token_file": str(tmp_path / "agent.token")},
        "sources": {"local": {"enabled": False}},
    }
    path = tmp_path / "controller.yaml"
    path.write_text(json.dumps(config))
    return path


def _start(config: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, "-c", "from controller.cli import main; main()", "run", "--config",
                              str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    ready = json.loads(child.stdout.readline())
    return child, f"http://{ready['api']}"


@async_test
async def test_a_controller_killed_mid_storm_has_journaled_every_push_it_answered(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = _controller_config(tmp_path, port)
    names = [f"vm-{i:03d}" for i in range(STORM)]
    headers = {"Authorization": f"Bearer {PUSH}"}
    child, url = await asyncio.to_thread(_start, config)
    answered: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=url, trust_env=False, limits=httpx.Limits(max_connections=STORM),
                                     timeout=30) as http:
            async def push(name: str) -> None:
                with contextlib.suppress(httpx.TransportError):
                    answer = await http.post("/v1/pushes", json=_push(name), headers=headers)
                    if answer.status_code == 202:
                        answered.append(name)
                        if len(answered) == STORM // 10:
                            child.send_signal(signal.SIGKILL)  # a crash in the middle of the storm

            await asyncio.gather(*(push(name) for name in names))
    finally:
        child.kill()
        child.wait()
    lost = [name for name in answered if not _journaled(tmp_path / "journal.sqlite", name)]
    assert len(answered) >= STORM // 10 and lost == [], f"answered 202 but not in the journal: {lost}"

    child, url = await asyncio.to_thread(_start, config)  # the agents retry against the restarted controller
    try:
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
            again = {name: (await http.post("/v1/pushes", json=_push(name), headers=headers)).json()
                     for name in names}
    finally:
        child.terminate()
        child.wait()
    assert {again[name]["disposition"] for name in answered} == {"duplicate"}, "an answered push was lost"
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        per_instance = dict(db.execute("SELECT instance, COUNT(*) FROM drains GROUP BY instance").fetchall())
    assert per_instance == {name: 1 for name in names}, "every notice has exactly one episode after the crash"
