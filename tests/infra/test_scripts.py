"""Boot scripts install the API server and the agent as systemd units, with configs the agent itself accepts."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable

import pytest
import yaml

from controller.agent.config import parse_config
from infra import heredocs, rendered, scripts
from infra.config import StackConfig
from infra.mocks import OfflineRun

Built = Callable[[str], tuple[StackConfig, OfflineRun]]


def _api_script(built: Built) -> tuple[StackConfig, str]:
    config, run = built("production")
    (template, *_) = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    return config, template.inputs["metadataStartupScript"]


def _heredoc(script: str, path: str) -> str:
    match = re.search(rf"cat > {re.escape(path)} <<'?DRAINCTL_EOF'?\n(.*?)\nDRAINCTL_EOF", script, re.S)
    assert match, f"{path} is not written by the script"
    return match.group(1)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_rendered_scripts_are_valid_bash(built: Built) -> None:
    _, run = built("production")
    texts = [t.inputs["metadataStartupScript"] for t in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")]
    texts += [vm.inputs["metadataStartupScript"] for vm in run.of_type("gcp:compute/instance:Instance")]
    for text in texts:
        subprocess.run(["bash", "-n"], input=text, text=True, check=True, timeout=30)


def test_agent_config_is_accepted_by_the_agent(built: Built) -> None:
    config, script = _api_script(built)
    values = {"vm_host": "api-0001", "vm_address": "10.1.2.3"}
    raw = yaml.safe_load(heredocs.expand(_heredoc(script, "/etc/drainctl/agent.yaml"), values))
    agent = parse_config(raw, where="agent.yaml")
    assert agent.listen_port == config.app.agent_port
    assert agent.service_port == config.app.app_port
    assert agent.instance == "api-0001"
    assert str(agent.token_file) == scripts.AGENT_TOKEN_FILE
    assert agent.fallback.drain_rate_per_s == config.budget.drain_rate_per_s
    assert agent.platform.kind == "gcp", "a GCP agent watches the GCE metadata server's preemption notices"


def test_agent_holds_the_shutdown_until_the_api_server_is_drained(built: Built) -> None:
    config, script = _api_script(built)
    agent_unit = _heredoc(script, "/etc/systemd/system/drainctl-agent.service")
    api_unit = _heredoc(script, "/etc/systemd/system/drainctl-api.service")
    assert "After=network-online.target drainctl-api.service" in agent_unit  # stopped before the API server...
    assert "ExecStop=/opt/drainctl/bin/drainctl agent hold" in agent_unit  # ...and its stop waits for the drain
    shipped = (scripts.UNITS / "drainctl-agent.service").read_text().rstrip()  # deploy/systemd's unit...
    stop_s = rendered.agent_stop_timeout_s(config.budget)  # ...with the stop timeout the budget needs
    assert agent_unit == re.sub(r"(?m)^TimeoutStopSec=.*$", f"TimeoutStopSec={stop_s:g}", shipped)
    assert "AmbientCapabilities=CAP_NET_ADMIN" in agent_unit  # ss -K needs it
    assert "EnvironmentFile=/etc/drainctl/database.env" in api_unit
    assert "systemctl enable --now drainctl-agent.service drainctl-api.service" in script


def test_api_servers_get_their_regions_read_host(built: Built) -> None:
    _, run = built("production")
    routing = run.outputs["routing"]
    for template in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate"):
        env = _heredoc(template.inputs["metadataStartupScript"], "/etc/drainctl/database.env")
        assert f"DATABASE_READ_HOST={routing[template.region]['read_host']}" in env
        assert f"DATABASE_WRITE_HOST={routing[template.region]['write_host']}" in env


def test_azure_custom_data_is_cloud_init_running_the_same_script(built: Built) -> None:
    _, run = built("production")
    for scale_set in run.of_type("azure-native:compute:VirtualMachineScaleSet"):
        document = base64.b64decode(scale_set.inputs["virtualMachineProfile"]["osProfile"]["customData"]).decode()
        assert document.startswith("#cloud-config\n")
        cloud_config = yaml.safe_load(document)
        (boot,) = cloud_config["write_files"]
        assert cloud_config["runcmd"] == [[boot["path"]]]
        assert "drainctl agent --config /etc/drainctl/agent.yaml" in boot["content"]
        assert "azure_secret " in boot["content"]  # secrets come from Key Vault at boot
        agent = parse_config(
            yaml.safe_load(heredocs.expand(_heredoc(boot["content"], "/etc/drainctl/agent.yaml"),
                                           {"vm_host": "vm0", "vm_address": "10.1.2.3", "vm_name": "api_0"})),
            where="agent.yaml",
        )
        assert agent.platform.kind == "azure", "an Azure agent watches IMDS scheduled events"


def test_controller_yaml_carries_the_stacks_budget(built: Built) -> None:
    config, run = built("production")
    (active, _) = run.of_type("gcp:compute/instance:Instance")
    text = _heredoc(active.inputs["metadataStartupScript"], "/etc/drainctl/controller.yaml")
    controller = yaml.safe_load(heredocs.expand(text, {"vm_host": "ctl-a"}))
    assert controller["budget"] == config.budget.as_dict()


def _rendered_scripts(run: OfflineRun) -> dict[str, str]:
    """Every boot script the stack renders: GCP startup scripts, scale sets' cloud-init, controllers' userData."""
    templates = run.of_type("gcp:compute/instanceTemplate:InstanceTemplate")
    texts = {template.name: template.inputs["metadataStartupScript"] for template in templates}
    texts |= {vm.name: vm.inputs["metadataStartupScript"] for vm in run.of_type("gcp:compute/instance:Instance")}
    for scale_set in run.of_type("azure-native:compute:VirtualMachineScaleSet"):
        custom_data = scale_set.inputs["virtualMachineProfile"]["osProfile"]["customData"]
        document = yaml.safe_load(base64.b64decode(custom_data))
        texts[scale_set.name] = document["write_files"][0]["content"]
    for vm in run.of_type("azure-native:compute:VirtualMachine"):
        texts[vm.name] = base64.b64decode(vm.inputs["userData"]).decode()
        bootstrap = yaml.safe_load(base64.b64decode(vm.inputs["osProfile"]["customData"]))
        (runner,) = [f for f in bootstrap["write_files"] if f["path"] == scripts.BOOT_RUNNER]
        texts[f"{vm.name} (customData runner)"] = runner["content"]
    return texts


@pytest.mark.parametrize("stack", ["staging", "production", "production-cloudsql"])
def test_every_rendered_script_passes_shellcheck(built: Built, stack: str) -> None:
    """shellcheck is a Debian package the Makefile's `setup` installs (DEBIAN_PACKAGES)."""
    assert shutil.which("shellcheck"), "shellcheck is missing: run `make setup` (Debian package shellcheck)"
    _, run = built(stack)
    texts = _rendered_scripts(run)
    assert len(texts) >= 5
    for name, text in texts.items():
        result = subprocess.run(
            ["shellcheck", "--shell=bash", "--severity=info", "-"], input=text, text=True, capture_output=True,
            timeout=60, check=False,
        )
        assert result.returncode == 0, f"{name}:\n{result.stdout}"
