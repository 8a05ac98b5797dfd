"""The agents' push route: the push token opens it and nothing else; a push from an instance nobody listed is
learned and drained; a body that is not a push is one 400 naming the key; without the fleet's agent token the
controller refuses to learn an instance it could not call back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from controller.api.pushes import Pushes
from controller.api.routes import build_app
from controller.hosts.fleet import Fleet
from controller.hosts.pooling import AgentPool
from tests.controller.engine.fakes import World, make_world
from tests.support.serving import serving
from tests.support.tasks import async_test

API, PUSH = "api-token", "push-token"


def _push(instance: str, notice_id: str = "n1", **extra: object) -> dict[str, object]:
    body = {"instance": instance, "agent_url": "http://10.0.0.7:9100",
            "notice": {"id": notice_id, "kind": "terminate", "not_after": 2e9}}
    return {**body, **extra}


@asynccontextmanager
async def _api(tmp_path: Path, *, learn: bool = True) -> AsyncIterator[tuple[httpx.AsyncClient, World, Fleet]]:
    world = make_world(tmp_path / "journal.sqlite")
    pool = AgentPool()
    agents = Fleet(world.engine.inventory, {}, pool=pool, token="agent-token" if learn else None, timeout_s=1)
    app = build_app(world.engine, API, pushes=Pushes(PUSH, world.engine, agents, learned_pool="web"))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, trust_env=False) as http:
        yield http, world, agents
    await agents.aclose()
    await pool.aclose()
    world.store.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@async_test
async def test_the_push_token_reports_notices_and_opens_nothing_else(tmp_path: Path) -> None:
    async with _api(tmp_path) as (http, world, _):
        answer = await http.post("/v1/pushes", json=_push("A"), headers=_bearer(PUSH))
        assert answer.status_code == 202 and answer.json()["disposition"] == "started"
        for method, path in [("POST", "/v1/drains"), ("GET", "/v1/instances"), ("POST", "/v1/instances/A/reset"),
                             ("POST", "/v1/events"), ("GET", "/metrics")]:
            refused = await http.request(method, path, json={"instance": "A"}, headers=_bearer(PUSH))
            assert refused.status_code == 401, path
        assert (await http.post("/v1/pushes", json=_push("A"), headers=_bearer("guess"))).status_code == 401
        assert (await http.post("/v1/pushes", json=_push("A", "n2"), headers=_bearer(API))).status_code == 202
        assert [d.instance for d in world.engine.history()] == ["A"]


@async_test
async def test_a_push_from_an_unlisted_instance_is_learned_and_drained(tmp_path: Path) -> None:
    async with _api(tmp_path) as (http, world, agents):
        answer = await http.post("/v1/pushes", json=_push("new-vm", pool="api"), headers=_bearer(PUSH))
        assert answer.status_code == 202
        assert answer.json()["learned"] is True and answer.json()["disposition"] == "started"
        assert world.engine.inventory["new-vm"] == "api"
        assert agents["new-vm"].base_url == "http://10.0.0.7:9100"
        again = await http.post("/v1/pushes", json=_push("new-vm", agent_url="http://6.6.6.6:1"),
                                headers=_bearer(PUSH))
        start_by = answer.json()["start_by"]
        assert start_by == world.engine.start_by(world.engine.history()[0]) and start_by < 2e9, \
            "the agent learns by when the controller's plan drains it (its fallback waits that long)"
        assert again.json() == {"disposition": "duplicate", "drain_id": 1, "learned": False, "start_by": start_by}
        assert agents["new-vm"].base_url == "http://10.0.0.7:9100"  # a push never moves a known instance
        other = await http.post("/v1/pushes", json=_push("other-vm", "n9"), headers=_bearer(PUSH))
        assert world.engine.inventory["other-vm"] == "web" and other.json()["learned"] is True


@async_test
async def test_a_body_that_is_not_a_push_is_one_400_naming_the_key(tmp_path: Path) -> None:
    async with _api(tmp_path) as (http, world, _):
        bad = await http.post("/v1/pushes", json=_push("A", agent_url="ftp://x"), headers=_bearer(PUSH))
        assert bad.status_code == 400 and bad.json()["error"].startswith("agent_url:")
        no_id = _push("A")
        no_id["notice"] = {"kind": "terminate", "not_after": 2e9}
        missing = await http.post("/v1/pushes", json=no_id, headers=_bearer(PUSH))
        assert missing.status_code == 400 and missing.json()["error"].startswith("notice.id:")
        assert world.engine.history() == []


@async_test
async def test_without_the_fleets_agent_token_an_unknown_instance_is_refused(tmp_path: Path) -> None:
    async with _api(tmp_path, learn=False) as (http, world, _):
        refused = await http.post("/v1/pushes", json=_push("new-vm"), headers=_bearer(PUSH))
        assert refused.status_code == 404 and "agents.token_file" in refused.json()["error"]
        assert "new-vm" not in world.engine.inventory and world.engine.history() == []
