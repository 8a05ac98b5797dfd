"""Acceptance (issue 4, GCP): the fake Compute API marks an instance DELETING (a paginated list with one 429 and
its Retry-After on the way); the matching testbed server is drained and verified before the fake's
graceful-shutdown deadline, and the guest's shutdown hold (`drainctl agent hold`, the agent unit's ExecStop)
returns only after that, also before the deadline.

Real parts: a reference server with WebSocket clients, the node agent beside it (`drainctl agent`), the hold
command, the controller assembled from controller.yaml in this process. Only the Compute API is a fake.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from controller.core.models import Outcome, Phase
from testbed import phoenix
from testbed.harness import Fleet
from testbed.harness.fleet import DRAINCTL
from tests.controller.platforms.support import Host, close_all, controller, controller_config, open_clients, start_host
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.threaded import Handle, serve
from tests.support import TEST_BUDGET, until
from tests.support.tasks import async_test

MIG = ["api-0", "api-1", "api-2"]
API_TOKEN = "ya29.fake-compute-token"


@pytest.fixture
def gcp(tmp_path: Path) -> Iterator[tuple[Handle[FakeCompute], Host, dict[str, object]]]:
    token_file = tmp_path / "compute.token"
    token_file.write_text(API_TOKEN + "\n")
    with Fleet(TEST_BUDGET, workdir=tmp_path / "fleet") as fleet, \
            serve(FakeCompute(page_size=1, require_token=API_TOKEN), name="fake-compute") as fake:
        fake.add_group("us-central1", "api", MIG)
        host = start_host(fleet, "api-1")
        source = {"enabled": True, "project": "proj", "groups": [{"region": "us-central1", "name": "api"}],
                  "api_url": fake.url, "auth": "token", "token_file": str(token_file), "poll_interval_s": 0.5,
                  "window_s": 60, "retry_max_s": 5}
        config = controller_config(tmp_path, [host], gcp=source)
        config["sources"]["local"] = {"enabled": False}
        yield fake, host, config


@async_test
async def test_a_deleting_instance_is_drained_and_verified_before_its_graceful_shutdown_ends(
    gcp: tuple[Handle[FakeCompute], Host, dict[str, object]],
) -> None:
    fake, host, config = gcp
    fake.fail_next(1, 429, retry_after="1", match="pageToken=1")
    async with controller(config) as running:
        clients = await open_clients(host.server, 10)
        await until(lambda: any(r.status == 429 for r in fake.lists()), what="the 429 on the second page")
        # The MIG deletes api-1 with a 60 s graceful shutdown; the guest's shutdown starts at once and is held.
        argv = ["agent", "hold", "--config", str(host.config_path), "--window-s", "50", "--agent-url", host.agent_url]
        hold = await asyncio.create_subprocess_exec(*DRAINCTL, *argv, stdout=PIPE, stderr=PIPE)
        try:
            await until(lambda: host.notices(), what="the shutdown hold's notice")
            deadline = fake.mark("api-1", "DELETING", status="PENDING_STOP", shutdown_s=60)
            assert deadline is not None
            await until(lambda: all(ws.close_code is not None for ws in clients), what="api-1's clients to close")
            out, err = await asyncio.wait_for(hold.communicate(), 60)
            hold_returned_at = time.time()
        finally:
            if hold.returncode is None:
                hold.kill()
                await hold.communicate()
        await until(lambda: (d := running.engine.get("api-1")) is not None and d.phase is Phase.RELEASED,
                    what="the drain to be released")
        [drain] = running.engine.history(instance="api-1")
        steps = {t.step: t.at for t in running.engine.journal(drain.id)}

    assert hold.returncode == 0, err.decode()
    assert json.loads(out)["outcome"] == "released"
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    assert (drain.source, drain.outcome, drain.verified_by, drain.sockets_before) == ("gcp", Outcome.GRACEFUL,
                                                                                        "kernel", 10)
    assert drain.not_after == pytest.approx(deadline, abs=0.01)
    assert steps["verified zero"] < steps["release requested"] <= hold_returned_at < deadline
    notices = {n["id"]: n for n in host.notices()}
    assert notices[drain.handles()[0]]["released_by"] == "controller"
    assert all(n["state"] == "released" for n in notices.values())
    statuses = [(r.query.get("pageToken"), r.status) for r in fake.lists()]
    retried = statuses.index(("1", 429))
    assert statuses[retried + 1] == ("1", 200), "the same page was asked again after the 429"
    assert {r.authorization for r in fake.lists()} == {f"Bearer {API_TOKEN}"}
    await close_all(clients)
