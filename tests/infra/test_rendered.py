"""issue 12: every controller.yaml and agent.yaml the stacks render is accepted by the daemons' own `--check`, and
each cloud's controllers get their own cloud's settings only, on the static addresses the agents push to.

The files come out of the rendered boot scripts themselves (their here-documents, infra/heredocs.py), the boot
values (`$vm_host`, ...) replaced by sample values as the shell would, the token paths moved to a temporary
directory holding sample tokens. `drainctl run --check` / `drainctl agent --check` run in-process through the CLI.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from controller.core.errors import ConfigError
from infra import heredocs, plan, rendered
from infra.config import StackConfig
from infra.mocks import OfflineRun
from tests.infra.conftest import parse_document, stack_document
from tests.support.checking import check

Built = Callable[[str], tuple[StackConfig, OfflineRun]]
STACKS = ("staging", "production")
SAMPLE = {"vm_host": "vm-sample-0", "vm_address": "10.9.8.7", "vm_name": "api-vmss_3"}
CONTROLLER_YAML, AGENT_YAML = "/etc/drainctl/controller.yaml", "/etc/drainctl/agent.yaml"


def scripts_of(run: OfflineRun) -> Iterator[tuple[str, str, str]]:
    """(cloud, resource name, boot script) of every VM and VM template the stack renders."""
    for template in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate"):
        yield "gcp", template.name, str(template.inputs["metadataStartupScript"])
    for vm in run.of_type("gcp:compute/instance:Instance"):
        yield "gcp", vm.name, str(vm.inputs["metadataStartupScript"])
    for scale_set in run.of_type("azure-native:compute:VirtualMachineScaleSet"):
        yield "azure", scale_set.name, heredocs.azure_script(scale_set.inputs["virtualMachineProfile"]["osProfile"][
            "customData"])
    for vm in run.of_type("azure-native:compute:VirtualMachine"):
        yield "azure", vm.name, heredocs.azure_script(vm.inputs["userData"])


def configs(run: OfflineRun, path: str) -> list[tuple[str, str, str]]:
    """(cloud, resource, file text after the shell's expansion) of every script that writes `path`."""
    found = []
    for cloud, name, script in scripts_of(run):
        written = heredocs.files(script)
        if path in written:
            body, expanded = written[path]
            found.append((cloud, name, heredocs.expand(body, SAMPLE) if expanded else body))
    return found


def _on_this_machine(text: str, directory: Path) -> Path:
    """The file with its /etc/drainctl paths moved under `directory`, where sample tokens are."""
    for name in ("agent-token", "app-admin-token", "api-token", "push-token"):
        (directory / name).write_text(f"sample-{name}\n", encoding="utf-8")
    path = directory / "config.yaml"
    path.write_text(text.replace(f"{rendered.ETC}/", f"{directory}/"), encoding="utf-8")
    return path


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_controller_yaml_passes_drainctl_run_check(built: Built, stack: str, tmp_path: Path) -> None:
    _, run = built(stack)
    found = configs(run, CONTROLLER_YAML)
    assert sorted(cloud for cloud, _, _ in found) == ["azure", "azure", "gcp", "gcp"], "a pair per cloud"
    for cloud, name, text in found:
        outcome = check("run", _on_this_machine(text, tmp_path))
        assert (outcome.code, outcome.stdout.strip()) == (0, "ok"), f"{stack} {cloud} {name}: {outcome.stderr}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_agent_yaml_passes_drainctl_agent_check(built: Built, stack: str, tmp_path: Path) -> None:
    _, run = built(stack)
    found = configs(run, AGENT_YAML)
    assert {cloud for cloud, _, _ in found} == {"gcp", "azure"}
    for cloud, name, text in found:
        outcome = check("agent", _on_this_machine(text, tmp_path))
        assert (outcome.code, outcome.stdout.strip()) == (0, "ok"), f"{stack} {cloud} {name}: {outcome.stderr}"


def test_a_broken_rendered_config_is_refused_in_one_line(built: Built, tmp_path: Path) -> None:
    _, run = built("staging")
    (_, _, text), *_ = configs(run, CONTROLLER_YAML)
    broken = text.replace("kind: postgres", "kind: postgress")

    outcome = check("run", _on_this_machine(broken, tmp_path))

    assert outcome.code == 2 and outcome.stdout == ""
    assert len(outcome.stderr.strip().splitlines()) == 1 and outcome.stderr.startswith("drainctl: "), outcome.stderr
    assert "leader" in outcome.stderr


def _controllers(run: OfflineRun) -> dict[str, list[dict[str, Any]]]:
    by_cloud: dict[str, list[dict[str, Any]]] = {}
    for cloud, _, text in configs(run, CONTROLLER_YAML):
        by_cloud.setdefault(cloud, []).append(yaml.safe_load(text))
    return by_cloud


@pytest.mark.parametrize("stack", STACKS)
def test_each_clouds_controllers_get_only_their_own_clouds_settings(built: Built, stack: str) -> None:
    config, run = built(stack)
    by_cloud = _controllers(run)
    gcp_groups = {(fleet.region, fleet.name) for fleet in run.of_type(
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager")}
    for controller in by_cloud["gcp"]:
        assert set(controller["sources"]) == {"gcp"}
        source = controller["sources"]["gcp"]
        assert source["enabled"] and source["discovery"]["enabled"] and source["project"] == config.gcp.project
        assert {(g["region"], g["name"]) for g in source["groups"]} == {(r, n) for r, n in gcp_groups}
    for controller in by_cloud["azure"]:
        assert set(controller["sources"]) == {"azure"}
        source = controller["sources"]["azure"]
        assert len(source["scale_sets"]) == len(config.azure.regions)
        assert all(s["subscription"] and s["resource_group"] and s["name"] for s in source["scale_sets"])
    leases = {cloud: {c["leader"]["name"] for c in pair} for cloud, pair in by_cloud.items()}
    assert leases == {"gcp": {"drainctl-gcp"}, "azure": {"drainctl-azure"}}, "one leader per cloud, not one in all"
    journals = {cloud: {c["journal"] for c in pair} for cloud, pair in by_cloud.items()}
    assert all(len(urls) == 1 for urls in journals.values()), "both controllers of a pair share one journal"
    assert journals["gcp"] != journals["azure"], "a leader resumes its journal's drains: never the other cloud's"
    created = {str(db.inputs.get("name") or db.inputs.get("databaseName")) for db in [
        *run.of_type("gcp:sql/database:Database"), *run.of_type("azure-native:dbforpostgresql:Database")]}
    for (url,) in journals.values():
        assert url.split("/")[-1].split("?")[0] in created, f"the stack creates the journal database of {url}"


@pytest.mark.parametrize("stack", STACKS)
def test_agents_push_to_their_clouds_controllers_on_the_static_addresses(built: Built, stack: str) -> None:
    config, run = built(stack)
    port = config.controller.api_port
    listens = {cloud: sorted(c["api"]["listen"] for c in pair) for cloud, pair in _controllers(run).items()}
    exported = run.outputs["controllers"]
    for cloud, addresses in listens.items():
        assert addresses == sorted(f"{a}:{port}" for a in exported[cloud]), "the export names the static addresses"
    for cloud, _, text in configs(run, AGENT_YAML):
        agent = yaml.safe_load(text)
        assert sorted(agent["controllers"]) == sorted(f"http://{a}" for a in listens[cloud])
        assert agent["push"]["advertise_url"] == f"http://{SAMPLE['vm_address']}:{config.app.agent_port}"
        assert agent["instance"] == (SAMPLE["vm_name"] if cloud == "azure" else SAMPLE["vm_host"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_hold_and_the_agents_stop_timeout_derive_from_the_budget(built: Built, stack: str) -> None:
    config, run = built(stack)
    b = config.budget
    window_s = b.lb_deregistration_s + b.drain_deadline_s + b.verify_s + b.margin_s
    for _, name, script in scripts_of(run):
        written = heredocs.files(script)
        if AGENT_YAML not in written:
            continue
        agent = yaml.safe_load(heredocs.expand(written[AGENT_YAML][0], SAMPLE))
        unit = written["/etc/systemd/system/drainctl-agent.service"][0]
        (stop_s,) = re.findall(r"^TimeoutStopSec=(\S+)$", unit, re.M)
        assert agent["hold"]["window_s"] == window_s < b.platform_notice_s, name
        assert float(stop_s) > window_s, f"{name}: systemd must not cut the hold short"


def test_every_units_environment_trusts_the_images_ca_store(built: Built) -> None:
    _, run = built("staging")
    for _, name, script in scripts_of(run):
        for path, (body, _) in heredocs.files(script).items():
            if path.endswith(".env"):
                assert f"SSL_CERT_FILE={rendered.CA_BUNDLE}\n" in body, f"{name} {path}"
                assert f"REQUESTS_CA_BUNDLE={rendered.CA_BUNDLE}\n" in body, f"{name} {path}"


def _grants(run: OfflineRun) -> dict[str, set[str]]:
    """Reader (`fleet`, `controller`) -> the generated secrets its identity may read, on either cloud."""
    readers: dict[str, set[str]] = {}
    secrets = ("agent-token", "app-admin-token", "db-password", "api-token", "push-token")
    grants = [*run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember"),
              *run.of_type("azure-native:authorization:RoleAssignment")]
    for grant in grants:
        for secret in secrets:
            for reader in ("fleet", "controller"):
                if grant.name.endswith(f"-{secret}-{reader}"):
                    readers.setdefault(f"{grant.type.split(':')[0]}/{reader}", set()).add(secret)
    return readers


def test_controllers_and_api_servers_read_exactly_the_secrets_they_use(built: Built) -> None:
    _, run = built("staging")
    fleet = {"agent-token", "app-admin-token", "db-password", "push-token"}
    controller = {"agent-token", "db-password", "api-token", "push-token"}
    assert _grants(run) == {
        "gcp/fleet": fleet, "gcp/controller": controller, "azure-native/fleet": fleet,
        "azure-native/controller": controller,
    }


@pytest.mark.parametrize(
    ("controller", "needle"),
    [
        ({"settings": {"sources": {}}}, "drainctl:controller: `settings` (one controller.yaml for both clouds) is "
         "replaced by the per-cloud parts"),
        ({"gcp": {"lease_s": 3, "renew_s": 2}}, "drainctl:controller.gcp.renew_s (2) must be at most a third"),
        ({"azure": {"interval_s": "often"}}, "drainctl:controller.azure.interval_s"),
        ({"api_port": 70000}, "drainctl:controller.api_port"),
    ],
    ids=["old-settings", "lease", "wrong-type", "port"],
)
def test_controller_settings_are_checked_at_plan_time(controller: dict[str, Any], needle: str) -> None:
    document = stack_document("staging")
    document["drainctl:controller"] = controller
    with pytest.raises(ConfigError) as refused:
        parse_document(document)
    assert needle in str(refused.value) and "\n" not in str(refused.value)


def test_a_clouds_controller_part_needs_that_cloud() -> None:
    document = stack_document("staging")
    del document["drainctl:azure"]
    document["drainctl:controller"] = {"azure": {"interval_s": 10}}
    with pytest.raises(ConfigError, match=r"drainctl:controller\.azure: the stack has no azure regions"):
        parse_document(document)


def test_the_plan_shows_each_controllers_own_settings(built: Built) -> None:
    """`make plan` reads each controller's settings back from its boot script: address, lease, what it watches."""
    _, run = built("production")
    console = Console(width=400, record=True, file=io.StringIO())
    console.print(plan._controllers(run))
    rows = [line for line in console.export_text().splitlines() if "controller-" in line]

    assert len(rows) == 4
    for row in rows:
        cloud = row.split("/")[0].strip()
        assert f"lease drainctl-{cloud}" in row
        assert ("MIGs" in row) == (cloud == "gcp") and ("scale sets" in row) == (cloud == "azure"), row


@pytest.mark.parametrize("stack", STACKS)
def test_each_controller_vm_has_a_contexts_file_naming_itself(built: Built, stack: str) -> None:
    """`sudo drainctl status` on a controller VM asks that controller, on its private address, with its token."""
    _, run = built(stack)
    for cloud, name, text in configs(run, CONTROLLER_YAML):
        (script,) = [s for c, n, s in scripts_of(run) if (c, n) == (cloud, name)]
        body, expanded = heredocs.files(script)[rendered.ONCALL_CONTEXTS]
        context = yaml.safe_load(body)
        assert not expanded and context["current"] == "this-controller", name
        assert context["contexts"]["this-controller"] == {
            "url": yaml.safe_load(text)["leader"]["advertise_url"], "token_file": rendered.API_TOKEN_FILE}


@pytest.mark.parametrize("stack", STACKS)
def test_every_controller_leaves_rotation_first_observing_what_its_cloud_offers(built: Built, stack: str) -> None:
    """issue 15: GCP observes the edge's own backend service; Azure has no cheap probe-state read, so the timer."""
    config, run = built(stack)
    by_cloud = _controllers(run)
    backends = {str(b.outputs["name"]) for b in run.of_type("gcp:compute/backendService:BackendService")}
    assert backends, "the stack renders the GCP edge's backend service"
    for cloud, pair in by_cloud.items():
        for controller in pair:
            assert controller["rotation"] == {"enabled": True}, cloud
    for controller in by_cloud["gcp"]:
        observed = controller["sources"]["gcp"]["backend_health"]["backend_services"]
        assert {s["name"] for s in observed} == backends and all("region" not in s for s in observed), "global"
    assert all("backend_health" not in c["sources"]["azure"] for c in by_cloud["azure"])
    hooks = {yaml.safe_load(text)["app"].get("not_ready_url") for _, _, text in configs(run, AGENT_YAML)}
    assert hooks == {config.app.not_ready_url}, "every agent gets the stack's not-ready hook (or none)"


def test_staging_agents_reach_the_reference_servers_not_ready_hook(built: Built) -> None:
    config, _ = built("staging")
    assert config.app.not_ready_url == "http://127.0.0.1:4001/admin/not-ready"
    assert config.app.drain_url.rpartition("/admin/")[0] == config.app.not_ready_url.rpartition("/admin/")[0]


def test_the_gcp_controllers_role_is_the_read_permissions_and_backend_health_only(built: Built) -> None:
    """`backendServices.getHealth` needs `compute.backendServices.get` and nothing more (the Compute API reference);
    the controller never writes."""
    _, run = built("staging")
    (role,) = run.of_type("gcp:projects/iAMCustomRole:IAMCustomRole")
    assert sorted(role.inputs["permissions"]) == [
        "compute.backendServices.get", "compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list",
        "compute.instances.get", "compute.instances.list",
    ]
