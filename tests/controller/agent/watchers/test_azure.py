"""Acceptance (issue 4, Azure): the fake IMDS schedules a Terminate for this VM (and one for another VM); the
agent's server is drained, and the fake receives exactly one StartRequests for the right EventId, after the drain
and before NotBefore: driven by the controller, forced with resets when the server ignores the drain, and by the
agent's fallback alone when the controller is stopped. Malformed JSON, unknown event types and 500s are logged
and survived; Freeze is reported, not drained; a restarted agent remembers its notices and approves once.

Real parts: a reference server with WebSocket clients, the node agent (`drainctl agent`, platform azure) beside
it, the controller assembled from controller.yaml in this process. Only the IMDS is a fake.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from testbed import phoenix
from testbed.harness import Fleet
from testbed.harness.exposition import metric_sum
from tests.controller.platforms.support import Host, close_all, controller, controller_config, open_clients, start_host
from tests.fakes.azure_imds import FakeImds, rfc1123
from tests.fakes.threaded import Handle, serve
from tests.support import needs_root, until
from tests.support.tasks import async_test

NOTICE_S = 40.0


@pytest.fixture
def imds() -> Iterator[Handle[FakeImds]]:
    with serve(FakeImds(name="vm-a"), name="fake-imds") as fake:  # the agent asks IMDS for its Azure name
        yield fake


def azure(imds: Handle[FakeImds], **options: object) -> dict[str, object]:
    return {"kind": "azure", "imds_url": imds.url, "poll_s": 0.5, "retry_max_s": 2.0, **options}


def not_before(imds: Handle[FakeImds], event_id: str) -> float:
    """The NotBefore the fake published (RFC 1123: whole seconds; it is "" once the event has started)."""
    return parsedate_to_datetime(rfc1123(imds.not_before[event_id])).timestamp()


def agent_metric(host: Host, name: str, **labels: str) -> float:
    return metric_sum(host.call("GET", "/metrics").text, name, labels, where=host.name)


@async_test
async def test_a_terminate_is_drained_by_the_controller_and_approved_once_after_the_drain_before_notbefore(
    fleet: Fleet, imds: Handle[FakeImds], tmp_path: Path
) -> None:
    host = start_host(fleet, "vm-a", platform=azure(imds), fallback={"enabled": True, "grace_s": 5})
    async with controller(controller_config(tmp_path, [host])) as running:
        clients = await open_clients(host.server, 10)
        other = imds.schedule("Terminate", ["vm-b"], not_before_s=NOTICE_S)
        mine = imds.schedule("Terminate", ["vm-a"], not_before_s=NOTICE_S)
        await until(lambda: imds.approved(mine), what="StartRequests for vm-a's event")
        [drain] = running.engine.history(instance="vm-a")
        steps = {t.step: t.at for t in running.engine.journal(drain.id)}

    [approval] = imds.start_requests
    assert approval.event_ids == [mine] and approval.status == 200
    assert imds.approved(other) == [], "the other VM's event is not ours to approve"
    assert steps["verified zero"] < approval.at < not_before(imds, mine)
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    assert drain.source == "local" and drain.handles() == (mine,)
    [notice] = host.notices()
    assert (notice["id"], notice["kind"], notice["source"]) == (mine, "terminate", "azure")
    assert (notice["drain_started_by"], notice["released_by"]) == ("controller", "controller")
    assert notice["not_after"] == not_before(imds, mine)
    assert agent_metric(host, "drainctl_agent_source_events_total", source="azure", type="Terminate") == 1
    await close_all(clients)


@needs_root
@async_test
async def test_when_the_server_ignores_the_drain_the_sockets_are_reset_and_the_event_still_approved_in_time(
    fleet: Fleet, imds: Handle[FakeImds], tmp_path: Path
) -> None:
    host = start_host(fleet, "vm-a", platform=azure(imds), fault="ignore-drain",
                      fallback={"enabled": True, "grace_s": 5})
    async with controller(controller_config(tmp_path, [host])) as running:
        clients = await open_clients(host.server, 10)
        mine = imds.schedule("Terminate", ["vm-a"], not_before_s=NOTICE_S)
        await until(lambda: imds.approved(mine), what="StartRequests for vm-a's event")
        [drain] = running.engine.history(instance="vm-a")

    [approval] = imds.start_requests
    assert approval.event_ids == [mine] and approval.at < not_before(imds, mine)
    assert (drain.outcome, drain.sockets_reset) == ("forced", 10)
    await until(lambda: all(ws.close_code is not None for ws in clients), what="the clients to see their reset")
    assert {ws.close_code for ws in clients} == {1006}, "reset by TCP RST, not closed by the server"
    await close_all(clients)


@async_test
async def test_with_the_controller_stopped_the_agents_fallback_drains_and_approves_alone(
    fleet: Fleet, imds: Handle[FakeImds], tmp_path: Path
) -> None:
    host = start_host(fleet, "vm-a", platform=azure(imds), fallback={"enabled": True, "grace_s": 2})
    async with controller(controller_config(tmp_path, [host])):
        pass  # it ran, and it is stopped now
    clients = await open_clients(host.server, 10)
    mine = imds.schedule("Terminate", ["vm-a"], not_before_s=NOTICE_S)
    imds.schedule("Preempt", ["vm-b"], not_before_s=NOTICE_S)
    await until(lambda: imds.approved(mine), what="StartRequests for vm-a's event")
    await until(lambda: all(ws.close_code is not None for ws in clients), what="the clients to be closed")

    [approval] = imds.start_requests
    assert approval.event_ids == [mine] and approval.at < not_before(imds, mine)
    assert {ws.close_code for ws in clients} == {phoenix.CLOSE_SERVICE_RESTART}
    [notice] = host.notices()
    assert (notice["drain_started_by"], notice["released_by"]) == ("agent", "agent")
    assert notice["drain_started_at"] < approval.at
    await close_all(clients)


@async_test
async def test_malformed_documents_unknown_event_types_and_500s_are_logged_and_survived(
    fleet: Fleet, imds: Handle[FakeImds]
) -> None:
    host = start_host(fleet, "vm-a", platform=azure(imds))
    imds.fail_next(2, 500)
    await until(lambda: agent_metric(host, "drainctl_agent_source_errors_total", source="azure",
                                     kind="unavailable") >= 2, what="the 500s to be counted")
    imds.malformed_next(1)
    await until(lambda: agent_metric(host, "drainctl_agent_source_errors_total", source="azure",
                                     kind="malformed") >= 1, what="the malformed document to be counted")
    imds.raw_event({"EventId": "E-1", "EventType": "Teleport", "Resources": ["vm-a"], "EventStatus": "Scheduled",
                    "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"})
    imds.raw_event({"EventType": "Terminate", "Resources": ["vm-a"]})
    imds.raw_event({"EventId": "E-2", "EventType": "Terminate", "Resources": ["vm-a"], "NotBefore": "tomorrow"})
    imds.raw_event(["not", "an", "event"])
    await until(lambda: agent_metric(host, "drainctl_agent_source_errors_total", source="azure",
                                     kind="unknown_event") >= 1, what="the unknown event type to be counted")
    freeze = imds.schedule("Freeze", ["vm-a"], not_before_s=NOTICE_S)
    mine = imds.schedule("Reboot", ["vm-a"], not_before_s=NOTICE_S)
    await until(lambda: host.notice(mine), what="the Reboot to become a notice after all that")

    assert [n["id"] for n in host.notices()] == [mine], "no notice for the malformed, unknown or Freeze events"
    assert host.notice(mine)["kind"] == "reboot"  # type: ignore[index]
    assert agent_metric(host, "drainctl_agent_source_errors_total", source="azure", kind="malformed") >= 4
    assert agent_metric(host, "drainctl_agent_source_last_success_timestamp_seconds", source="azure") > 0
    log = host.log()
    assert "HTTP 500" in log and "not JSON" in log and "unknown EventType 'Teleport'" in log
    assert "skipped a malformed event" in log
    assert f"scheduled event {freeze}: Freeze of vm-a" in log and "reported, not drained" in log
    assert imds.refused == [], "every request carried Metadata: true and the api-version"
    assert imds.start_requests == []


@async_test
async def test_a_restarted_agent_keeps_its_open_notice_and_never_approves_twice(
    fleet: Fleet, imds: Handle[FakeImds], tmp_path: Path
) -> None:
    state = tmp_path / "state" / "agent-notices.json"
    platform = azure(imds, drain_on_freeze=True)
    first = start_host(fleet, "vm-a", platform=platform, state_file=state, label="agent-1")
    freeze = imds.schedule("Freeze", ["vm-a"], not_before_s=NOTICE_S)
    await until(lambda: first.notice(freeze), what="the Freeze notice (drain_on_freeze)")
    first.agent.signal(signal.SIGKILL)
    first.agent.wait_exit(10)

    second = start_host(fleet, "vm-a", platform=platform, state_file=state, label="agent-2")
    restored = second.notice(freeze)
    assert restored is not None and restored["state"] == "open" and restored["kind"] == "freeze"
    second.call("POST", f"/v1/notices/{freeze}/release").raise_for_status()
    await until(lambda: imds.approved(freeze), what="the approval")
    second.agent.signal(signal.SIGTERM)
    second.agent.wait_exit(10)

    third = start_host(fleet, "vm-a", platform=platform, state_file=state, label="agent-3",
                       fallback={"enabled": True, "grace_s": 0})
    polls = len(imds.polls)
    await until(lambda: len(imds.polls) >= polls + 3, what="three reads by the restarted agent")
    assert third.notice(freeze)["state"] == "released"  # type: ignore[index]
    assert len(imds.start_requests) == 1, "approved once, whatever the restarts"


@async_test
async def test_an_approval_refused_because_the_event_is_gone_ends_the_hold_without_retrying(
    fleet: Fleet, imds: Handle[FakeImds]
) -> None:
    host = start_host(fleet, "vm-a", platform=azure(imds))
    mine = imds.schedule("Redeploy", ["vm-a"], not_before_s=NOTICE_S)
    await until(lambda: host.notice(mine), what="the Redeploy notice")
    imds.remove(mine)  # the platform cancelled (or completed) the event

    response = host.call("POST", f"/v1/notices/{mine}/release")

    assert response.status_code == 200 and response.json()["state"] == "released"
    assert [(r.event_ids, r.status) for r in imds.start_requests] == [([mine], 400)]
    assert "approval refused" in host.log()
