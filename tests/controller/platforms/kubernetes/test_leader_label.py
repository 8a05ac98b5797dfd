"""The Lease holder labels its own pod, and the controller's Service (deploy/kubernetes/service.yaml) selects
the label (controller/platforms/kubernetes/labelling.py): against the fake API server, the Service reaches the
leader and only it, through a clean hand-over (never both at once), a holder cut off from the API server (the
new leader takes the stale label off), and a replica that starts in a pod still labelled from before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.app import assemble
from controller.config import parse_config
from controller.core.errors import ConfigError
from controller.platforms.kubernetes.labelling import LabelledElector, PodLabel
from controller.platforms.kubernetes.leases import LeaseElector, LeaseSettings
from tests.controller.platforms.kubernetes.support import api_for
from tests.fakes.kubernetes import Handle, serve
from tests.support import REPO_ROOT, until
from tests.support.tasks import async_test

LEASE_S = 3.0
RENEW_S = 0.5
DEPLOY = REPO_ROOT / "deploy" / "kubernetes"
SELECTOR: dict[str, str] = yaml.safe_load((DEPLOY / "service.yaml").read_text())["spec"]["selector"]
POD_LABELS: dict[str, str] = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())[
    "spec"]["template"]["metadata"]["labels"]
LABEL = yaml.safe_load(yaml.safe_load((DEPLOY / "configmap.yaml").read_text())["data"]["controller.yaml"])[
    "leader"]["pod_label"]


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        yield handle


@dataclass
class Replica:
    """A labelled elector in pod `ctl-NAME`, whose work only records whether it is acting."""

    elector: LabelledElector
    acting: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def work(self) -> None:
        self.acting = True
        try:
            await asyncio.Event().wait()
        finally:
            self.acting = False

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.lead(self.work))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@contextlib.asynccontextmanager
async def replicas(fake: Handle, *names: str) -> AsyncIterator[dict[str, Replica]]:
    made: dict[str, Replica] = {}
    apis = []
    try:
        for name in names:
            if fake.pod(f"ctl-{name}") is None:
                fake.add_pod(f"ctl-{name}", labels=POD_LABELS)
            api = api_for(fake, f"drainctl/{name}")
            apis.append(api)
            elector = LeaseElector(api, LeaseSettings("default", "drainctl", name, LEASE_S, RENEW_S))
            made[name] = Replica(LabelledElector(elector, api, PodLabel("default", f"ctl-{name}", LABEL, 1.0)))
        yield made
    finally:
        for replica in made.values():
            await replica.stop()
        for api in apis:
            api.close()


def reached(fake: Handle) -> list[str]:
    return fake.endpoints(SELECTOR)


def label(fake: Handle, name: str) -> str | None:
    return fake.pod(f"ctl-{name}")["metadata"]["labels"].get(LABEL)


def looked_for_others(fake: Handle, agent: str) -> bool:
    """The replica listed the pods labelled as the leader's (after its own label was set)."""
    return any(r.user_agent == agent and r.query.get("labelSelector") == f"{LABEL}=true" and r.status == 200
               for r in fake.requests)


def most_labelled_at_once(fake: Handle) -> int:
    """Over every pod change the fake saw, the most pods that carried the leader label at the same time."""
    state: dict[str, bool] = {}
    most = 0
    for _, _, kind, pod in fake.history:
        labels = pod["metadata"].get("labels") or {}
        state[pod["metadata"]["name"]] = kind != "DELETED" and labels.get(LABEL) == "true"
        most = max(most, sum(state.values()))
    return most


@async_test
async def test_the_service_reaches_the_leader_only_and_a_replica_starting_in_a_labelled_pod_unlabels_it(
    fake: Handle,
) -> None:
    async with replicas(fake, "one") as first:
        first["one"].start()
        await until(lambda: reached(fake) == ["ctl-one"], what="the Service to reach the leader's pod")
        assert first["one"].acting and label(fake, "one") == "true"
        await until(lambda: looked_for_others(fake, "drainctl/one"), what="the leader to look for stale labels")
        # ctl-two's container restarted: its pod still carries the label its previous process had set.
        fake.add_pod("ctl-two", labels={**POD_LABELS, LABEL: "true"})
        assert reached(fake) == ["ctl-one", "ctl-two"]
        async with replicas(fake, "two") as second:
            second["two"].start()
            await until(lambda: label(fake, "two") == "false", what="the standby to take the stale label off")
            assert reached(fake) == ["ctl-one"] and not second["two"].acting
            assert {r.user_agent for r in fake.requests_where("PATCH", "/pods/ctl-two")} == {"drainctl/two"}


@async_test
async def test_a_clean_hand_over_moves_the_service_to_the_new_leader_and_never_to_both(fake: Handle) -> None:
    async with replicas(fake, "one", "two") as running:
        running["one"].start()
        await until(lambda: reached(fake) == ["ctl-one"], what="the Service to reach the first leader")
        running["two"].start()
        await until(lambda: label(fake, "two") == "false", what="the standby to mark its pod")
        await running["one"].stop()
        [unlabelled] = [r for r in fake.requests_where("PATCH", "/pods/ctl-one")
                        if r.body == {"metadata": {"labels": {LABEL: "false"}}} and r.status == 200][-1:]
        [released] = [w for w in fake.lease_writes if w["holder"] is None]
        assert unlabelled.at <= released["at"], "the label must be off before the Lease is released"
        await until(lambda: reached(fake) == ["ctl-two"], what="the Service to reach the new leader")
        assert running["two"].acting and label(fake, "one") == "false"
        assert most_labelled_at_once(fake) == 1, "the Service must never have reached both replicas"


@async_test
async def test_a_leader_cut_off_from_the_api_server_loses_the_service_to_the_new_leader(fake: Handle) -> None:
    async with replicas(fake, "one", "two") as running:
        running["one"].start()
        await until(lambda: reached(fake) == ["ctl-one"], what="the Service to reach the first leader")
        running["two"].start()
        await until(lambda: label(fake, "two") == "false", what="the standby to mark its pod")
        cut_at = time.time()
        fake.partition("drainctl/one")  # it can neither renew nor take its own label off
        await until(lambda: running["two"].acting, within_s=4 * LEASE_S + 10, what="the standby to take over")
        await until(lambda: reached(fake) == ["ctl-two"], what="the new leader to take the stale label off")
        assert not running["one"].acting and label(fake, "one") == "false"
        took_off = [r for r in fake.requests_where("PATCH", "/pods/ctl-one") if r.at >= cut_at and r.status == 200]
        assert {r.user_agent for r in took_off} == {"drainctl/two"}


@async_test
async def test_drainctl_run_with_pod_label_labels_the_pod_the_downward_api_names(
    fake: Handle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.add_pod("ctl-0", labels=POD_LABELS)
    raw: dict[str, Any] = {
        "journal": str(tmp_path / "j.sqlite"),
        "sources": {"kubernetes": {"api_url": fake.url}},
        "leader": {"kind": "lease", "namespace": "default", "lease_duration_s": LEASE_S, "renew_s": RENEW_S,
                   "pod_label": LABEL},
    }
    monkeypatch.setenv("DRAINCTL_POD_NAME", "ctl-0")
    monkeypatch.setenv("DRAINCTL_POD_NAMESPACE", "default")
    async with assemble(parse_config(raw)) as assembly:
        running = asyncio.create_task(assembly.run())
        try:
            await until(lambda: reached(fake) == ["ctl-0"], what="the controller to label its own pod")
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    assert label(fake, "0") == "false", "a controller that stops takes its label off"


@async_test
async def test_a_pod_label_without_the_pods_name_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw: dict[str, Any] = {
        "journal": str(tmp_path / "j.sqlite"),
        "sources": {"kubernetes": {"api_url": "http://127.0.0.1:9"}},
        "leader": {"kind": "lease", "namespace": "api", "pod_label": LABEL},
    }
    monkeypatch.delenv("DRAINCTL_POD_NAME", raising=False)
    monkeypatch.setenv("DRAINCTL_POD_NAMESPACE", "api")
    with pytest.raises(ConfigError) as caught:
        async with assemble(parse_config(raw)):
            pass
    assert str(caught.value) == (
        "leader.pod_label: DRAINCTL_POD_NAME and DRAINCTL_POD_NAMESPACE must name this controller's pod "
        "(the downward API; see deploy/kubernetes/deployment.yaml)")


def test_a_pod_label_must_be_a_label_key(tmp_path: Path) -> None:
    raw = {"journal": str(tmp_path / "j.sqlite"),
           "leader": {"kind": "lease", "namespace": "api", "pod_label": "drainctl.io/leader=true"}}
    with pytest.raises(ConfigError, match=r"leader\.pod_label: String should match pattern"):
        parse_config(raw)
