"""The daemons' configuration files, as plain dicts: controller.yaml per cloud and agent.yaml per fleet.

`infra/scripts.py` writes them into the boot scripts; the infra tests load each with `drainctl run --check` and
`drainctl agent --check`, the daemons' own loaders, so what the program renders is what the daemons accept.

Each cloud's controller pair gets only its own cloud (DESIGN.md §11): the GCP pair discovers and watches the MIGs
the stack creates, the Azure pair discovers the stack's scale sets. Both take a server out of rotation before its
drain (`rotation.enabled`, issue 15): the GCP pair observes the edge's backend service (getHealth, with
`compute.backendServices.get` in its role); the Azure pair waits the budget's `lb_deregistration_s`, because the
Standard Load Balancer's only per-instance probe state is the load-balancing rule's health, a long-running
operation (POST, then poll its Location), not a cheap read a step could repeat every second.

The two controllers of a pair share a journal on the stack's Postgres (one database per cloud:
`journal_database`) and elect one leader (lease row `drainctl-<cloud>`); each serves its API on the static
private address the program chose for it, with the API and push tokens the boot script fetched. Values known
only on the VM (its host name, its address) are shell variables (`BOOT_VALUES`) the boot script's unquoted
here-documents expand.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.core.budget import Budget
from infra.config import CONTROLLER_HOSTS, AzureControllerSettings, GcpControllerSettings, StackConfig

ETC = "/etc/drainctl"
AGENT_TOKEN_FILE = f"{ETC}/agent-token"
APP_TOKEN_FILE = f"{ETC}/app-admin-token"
API_TOKEN_FILE = f"{ETC}/api-token"
PUSH_TOKEN_FILE = f"{ETC}/push-token"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""The image's CA store (Debian's ca-certificates): the daemons trust it, not certifi's copy (C2)."""
TLS_ENV = {"SSL_CERT_FILE": CA_BUNDLE, "REQUESTS_CA_BUNDLE": CA_BUNDLE}
"""In every unit's environment file: httpx, requests and google-auth read these."""
HOLD_SLACK_S = 30.0
"""The agent unit's TimeoutStopSec exceeds the hold window by this much: the hold command's own start and its
HTTP call (`drainctl agent hold` waits window + 30 s), so the hold ends by itself before systemd gives up."""

BOOT_VALUES = {
    "vm_host": "hostname",
    "vm_address": "hostname -I | cut -d' ' -f1",
    "vm_name": "curl -sSf --retry 10 --retry-connrefused -H Metadata:true "
    "'http://169.254.169.254/metadata/instance/compute?api-version=2021-02-01' "
    "| python3 -c 'import json, sys; print(json.load(sys.stdin)[\"name\"])'",
}
"""Values known only on the VM: the boot script sets these shell variables (under `set -e`, so a failed
command stops it) before the here-documents that name them. `vm_host`: the host name (GCE: the instance name);
`vm_address`: the primary private address; `vm_name` (Azure): the VM's name as Azure knows it
(`<scale set>_<instance id>`, IMDS `compute.name`), the name discovery gives it and Scheduled Events list."""
HOSTNAME, ADDRESS, AZURE_VM_NAME = "$vm_host", "$vm_address", "$vm_name"

@dataclass(frozen=True)
class GcpTargets:
    """What the GCP pair watches: the stack's regional MIGs, by region and name, and the global backend
    services whose health of their instances the out-of-rotation step observes."""

    project: str
    groups: tuple[tuple[str, str], ...]
    backend_services: tuple[str, ...] = ()


@dataclass(frozen=True)
class AzureTargets:
    """What the Azure pair discovers: the stack's scale sets, with the controller identity's client id."""

    subscription: str
    scale_sets: tuple[tuple[str, str], ...]
    """(resource group, scale set name)."""
    client_id: str


def gcp_controller_addresses(hub_cidr: ipaddress.IPv4Network) -> tuple[str, str]:
    """Hosts .250 and .251 of the hub region's subnet (checked at plan time: infra/config.py)."""
    return tuple(str(hub_cidr.network_address + host) for host in CONTROLLER_HOSTS)  # type: ignore[return-value]


def azure_controller_addresses(controller_subnet: ipaddress.IPv4Network) -> tuple[str, str]:
    """The first two hosts Azure lets a NIC take in the controller subnet (it reserves .0 to .3)."""
    return str(controller_subnet.network_address + 4), str(controller_subnet.network_address + 5)


def api_url(address: str, port: int) -> str:
    return f"http://{address}:{port}"


def journal_database(config: StackConfig, cloud: str) -> str:
    """The journal database of one cloud's pair, on the stack's Postgres beside the app's database.

    One per cloud, not one for both: a leader resumes every unfinished drain of its journal when it starts
    leading (docs/ha.md), so in a journal shared by both clouds the GCP leader would take up the Azure pair's
    drains (and its fence, a lease row per cloud, would not stop it)."""
    return f"{config.database.name}_journal_{cloud}"


def journal_url(config: StackConfig, write_host: str, sslmode: str, cloud: str) -> str:
    """The pair's journal, shared by its two controllers; the password comes from libpq's PGPASSFILE (the boot
    script writes it)."""
    db = journal_database(config, cloud)
    return f"postgresql://{config.database.user}@{write_host}:5432/{db}?sslmode={sslmode}"


def controller_config(
    config: StackConfig, *, address: str, write_host: str, targets: GcpTargets | AzureTargets
) -> dict[str, Any]:
    """controller.yaml of one controller VM (its `leader.holder` is the host name at boot)."""
    cloud = "gcp" if isinstance(targets, GcpTargets) else "azure"
    part: GcpControllerSettings | AzureControllerSettings = getattr(config.controller, cloud)
    port = config.controller.api_port
    return {
        "journal": journal_url(config, write_host, part.sslmode, cloud),
        "budget": config.budget.as_dict(),
        "api": {"listen": f"{address}:{port}", "token_file": API_TOKEN_FILE, "push_token_file": PUSH_TOKEN_FILE},
        "agents": {"token_file": AGENT_TOKEN_FILE},
        "sources": {cloud: _source(config, targets, part)},
        "rotation": {"enabled": True},
        "log": {"format": "json", "level": part.log_level},
        "leader": {
            "kind": "postgres",
            "name": f"drainctl-{cloud}",
            "holder": HOSTNAME,
            "lease_s": part.lease_s,
            "renew_s": part.renew_s,
            "advertise_url": api_url(address, port),
        },
    }


ONCALL_CONTEXTS = f"{ETC}/contexts.yaml"
"""The on-call CLI's system-wide contexts file (controller/oncall/contexts.py): on a controller VM,
`sudo drainctl status` asks this controller, on its private address, with its API token."""


def oncall_contexts(controller: Mapping[str, Any]) -> dict[str, Any]:
    """The contexts file of a controller VM: one context, this controller."""
    url = controller["leader"]["advertise_url"]
    return {"current": "this-controller", "contexts": {"this-controller": {"url": url, "token_file": API_TOKEN_FILE}}}


def _source(
    config: StackConfig, targets: GcpTargets | AzureTargets, part: GcpControllerSettings | AzureControllerSettings
) -> dict[str, Any]:
    agent_port = config.app.agent_port
    if isinstance(targets, GcpTargets):
        assert isinstance(part, GcpControllerSettings)
        return {
            "enabled": True,
            "project": targets.project,
            "groups": [{"region": region, "name": name} for region, name in targets.groups],
            "auth": "adc",
            "poll_interval_s": part.poll_interval_s,
            "window_s": config.budget.platform_notice_s,
            "discovery": {
                "enabled": True,
                "interval_s": part.discovery_interval_s,
                "agent_port": agent_port,
                "agent_token_file": AGENT_TOKEN_FILE,
            },
            "backend_health": {"backend_services": [{"name": name} for name in targets.backend_services]},
        }
    assert isinstance(part, AzureControllerSettings)
    return {
        "enabled": True,
        "scale_sets": [
            {"subscription": targets.subscription, "resource_group": group, "name": name}
            for group, name in targets.scale_sets
        ],
        "auth": "managed_identity",
        "client_id": targets.client_id,
        "interval_s": part.interval_s,
        "agent_port": agent_port,
        "agent_token_file": AGENT_TOKEN_FILE,
    }


def hold_window_s(budget: Budget) -> float:
    """The shutdown hold: out of rotation, the drain, its verification and the margin, all of which the budget
    fits inside the platform's notice (`lb_deregistration_s + drain_deadline_s + verify_s + margin_s <
    platform_notice_s`, controller/core/budget.py). A fixed 90 s cut a longer drain short silently."""
    return budget.lb_deregistration_s + budget.drain_deadline_s + budget.verify_s + budget.margin_s


def agent_stop_timeout_s(budget: Budget) -> float:
    """The agent unit's TimeoutStopSec: above the hold window, so the hold ends before systemd gives up."""
    return hold_window_s(budget) + HOLD_SLACK_S


def agent_config(config: StackConfig, *, platform: str, controllers: Sequence[str]) -> dict[str, Any]:
    """agent.yaml of an API server. `controllers`: the API URLs of its cloud's pair, which it pushes each new
    notice to. On Azure `platform.resource_name` is left out: the agent asks IMDS for `compute.name`."""
    app, budget = config.app, config.budget
    return {
        "platform": {"kind": platform},
        "listen": f"0.0.0.0:{app.agent_port}",
        "token_file": AGENT_TOKEN_FILE,
        "service_port": app.app_port,
        "app": {"drain_url": app.drain_url, "token_file": APP_TOKEN_FILE,
                **({} if app.not_ready_url is None else {"not_ready_url": app.not_ready_url})},
        "fallback": {
            "drain_rate_per_s": budget.drain_rate_per_s,
            "no_progress_window_s": budget.no_progress_window_s,
        },
        "hold": {"window_s": hold_window_s(budget)},
        "controllers": list(controllers),
        "push": {"token_file": PUSH_TOKEN_FILE, "advertise_url": f"http://{ADDRESS}:{app.agent_port}"},
        "instance": AZURE_VM_NAME if platform == "azure" else HOSTNAME,
    }

