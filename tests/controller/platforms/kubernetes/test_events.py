"""Acceptance (issue 14 item 3, Kubernetes Events): a drained pod carries Events saying when its drain started
and how it ended, as `kubectl describe pod` shows them.

Real parts as in test_drain.py (a reference server and a node agent behind each fake pod, the controller
assembled from controller.yaml); only the Kubernetes API server is a fake (tests/fakes/kubernetes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core.announcements import Journaled
from controller.core.models import Drain, EventKind, Phase, Transition
from controller.platforms.kubernetes.api import Pod
from controller.platforms.kubernetes.directory import PodDirectory
from controller.platforms.kubernetes.events import PodEvents
from controller.platforms.kubernetes.events import log as events_log
from tests.controller.platforms.kubernetes.support import api_for, controller_config, open_clients
from tests.controller.platforms.kubernetes.test_drain import Cluster, finalizers, make_cluster
from tests.controller.platforms.support import controller
from tests.fakes.kubernetes import serve
from tests.support import until
from tests.support.tasks import async_test


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with make_cluster(tmp_path) as made:
        yield made


@async_test
async def test_a_drained_pod_gets_drain_started_and_drain_ended_events_from_drainctl(cluster: Cluster) -> None:
    fake, (a, _b), env = cluster
    config = controller_config(env["workdir"], fake, port=env["port"], token_file=env["token_file"])
    uid = fake.pod("api-a")["metadata"]["uid"]
    async with controller(config):
        clients = await open_clients(a, 3)
        await until(lambda: finalizers(fake, "api-a") != [], what="api-a to be held")
        fake.delete_pod("api-a", grace_s=60)
        await until(lambda: [e["reason"] for e in fake.events_on("api-a")] == ["DrainStarted", "DrainEnded"],
                    what="the drain's start and end as Events on api-a")
        started, ended = fake.events_on("api-a")
        for event in (started, ended):
            assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "api-a",
                                               "namespace": "default", "uid": uid}
            assert (event["type"], event["source"], event["count"]) == ("Normal", {"component": "drainctl"}, 1)
        assert "drain started" in started["message"] and "drain ended: graceful" in ended["message"]
        assert started["firstTimestamp"] <= ended["firstTimestamp"]
        assert fake.events_on("api-b") == [], "the pod that was not drained gets no event"
        for ws in clients:
            await ws.close()


@async_test
async def test_a_refused_event_is_logged_once_and_dropped_and_the_next_one_is_still_posted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with serve() as fake:
        pod = fake.add_pod("api-0")
        api = api_for(fake)
        try:
            pods = PodDirectory()
            pods.put(Pod.from_json(pod))
            events = PodEvents(api, pods, namespace="default", instance="controller-1")
            drain = Drain(id=1, instance="api-0", pool="p", source="kubernetes", kind=EventKind.TERMINATE,
                          event_id="e", not_after=0.0, rate_per_s=1.0, drain_deadline_s=1.0, needs_release=True)
            line = Transition(seq=1, drain_id=1, instance="api-0", at=0.0, previous=Phase.PENDING,
                              phase=Phase.DRAINING, step="drain requested")
            fake.fail_next(2, 403, "/events")  # the Role without the events rule
            with caplog.at_level(logging.DEBUG, logger=events_log.name):
                for _ in range(3):
                    await events.hear(Journaled(line=line, before=None, after=drain))
        finally:
            api.close()
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "DrainStarted not posted" in warnings[0].getMessage()
        assert [e["reason"] for e in fake.events_on("api-0")] == ["DrainStarted"]
