"""deploy/kubernetes: the manifests hang together, the example config is a valid controller.yaml, and the Role
grants exactly the verbs the controller uses (every one it calls, and no other) — measured, not assumed, by
running the source, the hold, the release, the Lease election, the pod Events and the EndpointSlice look of the
out-of-rotation step against the fake API server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import parse_config
from controller.core.announcements import Journaled
from controller.core.models import Drain, EventKind, Phase, Ref, Transition
from controller.platforms.kubernetes.endpoints import ServiceEndpoints
from controller.platforms.kubernetes.events import PodEvents
from controller.platforms.kubernetes.finalizers import FinalizerHold, FinalizerRelease
from controller.platforms.kubernetes.labelling import LabelledElector, PodLabel
from controller.platforms.kubernetes.leases import LeaseElector, LeaseSettings
from tests.controller.platforms.kubernetes.support import FINALIZER, api_for, watching
from tests.fakes.kubernetes import Handle, Request, serve
from tests.support import REPO_ROOT, until
from tests.support.tasks import async_test

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"


def manifests() -> dict[str, dict[str, Any]]:
    """Every object of the kustomization's resources, by `Kind/name`."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    found: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((DEPLOY / resource).read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return manifests()


def test_the_deployment_runs_two_replicas_as_the_service_account_with_the_config_and_secrets(
    objects: dict[str, dict[str, Any]],
) -> None:
    assert set(objects) == {"ServiceAccount/drainctl", "Role/drainctl", "RoleBinding/drainctl",
                            "ConfigMap/drainctl-config", "Deployment/drainctl", "PodDisruptionBudget/drainctl",
                            "Service/drainctl"}
    deployment = objects["Deployment/drainctl"]["spec"]
    pod = deployment["template"]["spec"]
    assert deployment["replicas"] == 2 and pod["serviceAccountName"] == "drainctl"
    [container] = pod["containers"]
    assert container["command"] + container["args"] == ["drainctl", "run", "--config", "/etc/drainctl/controller.yaml"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "drainctl-config"
    assert volumes["secrets"]["secret"]["secretName"] == "drainctl-tokens"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    binding = objects["RoleBinding/drainctl"]
    assert binding["roleRef"]["name"] == "drainctl" and binding["subjects"][0]["name"] == "drainctl"
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"api"}


def test_the_example_config_is_a_valid_controller_yaml_for_the_same_namespace(
    objects: dict[str, dict[str, Any]], tmp_path: Path,
) -> None:
    raw = yaml.safe_load(objects["ConfigMap/drainctl-config"]["data"]["controller.yaml"])
    for name in ("api.token", "agent.token"):
        (tmp_path / name).write_text("secret\n")
    raw["api"]["token_file"] = str(tmp_path / "api.token")  # the Secret's mount, here
    raw["sources"]["kubernetes"]["agent_token_file"] = str(tmp_path / "agent.token")
    config = parse_config(raw, where="configmap.yaml")
    kube, leader = config.sources.kubernetes, config.leader
    assert kube.enabled and kube.hold == "finalizer" and kube.api_url is None  # in-cluster credentials
    role = objects["Role/drainctl"]
    assert leader is not None and leader.namespace == kube.namespace == role["metadata"]["namespace"]
    lease_rule = [r for r in role["rules"] if r.get("resourceNames")]
    assert lease_rule[0]["resourceNames"] == [leader.name]


def test_the_service_selects_the_leaders_label_and_both_replicas_stay_ready_for_rollouts_and_the_pdb(
    objects: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load(objects["ConfigMap/drainctl-config"]["data"]["controller.yaml"])
    deployment = objects["Deployment/drainctl"]["spec"]
    template, service = deployment["template"], objects["Service/drainctl"]["spec"]
    assert service["selector"] == {**template["metadata"]["labels"], config["leader"]["pod_label"]: "true"}
    [container] = template["spec"]["containers"]
    assert {p["targetPort"] for p in service["ports"]} <= {p["name"] for p in container["ports"]}
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env == {"DRAINCTL_POD_NAME": "metadata.name", "DRAINCTL_POD_NAMESPACE": "metadata.namespace"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz", "a standby never Ready stalls rollouts"
    pdb = objects["PodDisruptionBudget/drainctl"]["spec"]["selector"]["matchLabels"]
    assert pdb == deployment["selector"]["matchLabels"], "the budget counts both replicas, leader or not"


def _verb(request: Request) -> tuple[str, str]:
    """The RBAC (resource, verb) a request needs."""
    resource = next((r for r in ("leases", "events", "endpointslices") if f"/{r}" in request.path), "pods")
    named = request.path.rstrip("/").split("/")[-1] not in ("pods", "leases", "events", "endpointslices")
    if request.method == "GET":
        verb = "get" if named else ("watch" if request.query.get("watch") in ("true", "1") else "list")
    else:
        verb = {"PATCH": "patch", "POST": "create", "PUT": "update", "DELETE": "delete"}[request.method]
    return resource, verb


def _granted(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


@pytest.fixture
def fake() -> Iterator[Handle]:
    with serve() as handle:
        yield handle


@async_test
async def test_the_role_grants_exactly_the_verbs_the_controller_uses(
    fake: Handle, objects: dict[str, dict[str, Any]]
) -> None:
    pod = fake.add_pod("api-0")
    fake.add_pod("ctl-0", labels={"app.kubernetes.io/name": "drainctl"})
    api = api_for(fake)
    lease = LeaseElector(api, LeaseSettings("default", "drainctl", "one", 3.0, 0.5))
    elector = LabelledElector(lease, api, PodLabel("default", "ctl-0", "drainctl.io/leader", 1.0))
    lead = asyncio.create_task(elector.lead(asyncio.Event().wait))
    try:
        async with watching(fake) as seen:
            hold = FinalizerHold(api, seen.pods, namespace="default", finalizer=FINALIZER)
            holding = asyncio.create_task(hold.run())
            await until(lambda: fake.pod("api-0")["metadata"]["finalizers"] == [FINALIZER], what="the hold")
            await until(lambda: len(fake.lease_writes) >= 2, what="the lease to be created and renewed")
            await until(lambda: any(r.query.get("labelSelector") == "drainctl.io/leader=true" and r.status == 200
                                    for r in fake.requests), what="the leader to label its pod, look for others")
            fake.delete_pod("api-0", grace_s=30)
            await until(lambda: seen.events, what="the deletion event")
            drain = Drain(id=1, instance="api-0", pool="p", source="kubernetes", kind=EventKind.TERMINATE,
                          event_id="e", not_after=seen.events[0].not_after, rate_per_s=1.0, drain_deadline_s=1.0,
                          needs_release=True, refs=(Ref("kubernetes", pod["metadata"]["uid"]),))
            await FinalizerRelease(api, namespace="default", finalizer=FINALIZER).release(drain, drain.handles())
            line = Transition(seq=1, drain_id=1, instance="api-0", at=0.0, previous=Phase.PENDING,
                              phase=Phase.DRAINING, step="drain requested")
            events = PodEvents(api, seen.pods, namespace="default", instance="one")
            await events.hear(Journaled(line=line, before=None, after=drain))
            fake.add_service("api", {"app": "api"})
            await ServiceEndpoints(api, namespace="default", service="api").look()
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
    finally:
        lead.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lead
        api.close()
    used = {_verb(r) for r in fake.requests}
    assert used == _granted(objects["Role/drainctl"])
