"""On-call's private path to the controllers' API, under Pulumi's mocks: IAP on GCP, a Bastion on Azure.

What an SRE reviewing the stack would check: the path exists in every stack, opens only the
controllers' API port (the one the stack config names), only from IAP's range or the Bastion's
subnet, only to the controllers (never the fleet); the Bastion is the Standard SKU with tunneling
(what `az network bastion tunnel` needs) in an `AzureBastionSubnet` that overlaps nothing; the
Bastion reaches no other port of any VM; the plan and the `access` export show the path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from infra.azure.network import BASTION_SUBNET, carve
from infra.config import DEFAULT_API_PORT, ControllerSettings, StackConfig
from infra.gcp.network import IAP_TCP_RANGE
from infra.mocks import OfflineRun, Recorded, run_offline
from infra.oncall import access_notes
from tests.infra.conftest import parse_document, stack_document

Built = Callable[[str], tuple[StackConfig, OfflineRun]]
STACKS = ("staging", "production")
API_PORT = str(DEFAULT_API_PORT)


def _account(run: OfflineRun, role: str) -> str:
    (account,) = [a for a in run.of_type("gcp:serviceaccount/account:Account") if role in a.name]
    return str(account.outputs["email"])


def _hub_vnet(run: OfflineRun) -> Recorded:
    (vnet,) = [v for v in run.of_type("azure-native:network:VirtualNetwork")
               if any(s["name"] == BASTION_SUBNET for s in v.inputs["subnets"])]
    return vnet


def _bastion_rules(run: OfflineRun, bastion: str) -> list[tuple[str, dict[str, Any]]]:
    return [(nsg.name, rule) for nsg in run.of_type("azure-native:network:NetworkSecurityGroup")
            for rule in nsg.inputs["securityRules"] if rule["sourceAddressPrefix"] == bastion]


@pytest.mark.parametrize("stack", STACKS)
def test_iap_reaches_only_the_controllers_api_port(built: Built, stack: str) -> None:
    _, run = built(stack)
    firewalls = run.of_type("gcp:compute/firewall:Firewall")
    (rule,) = [r for r in firewalls if IAP_TCP_RANGE in r.inputs.get("sourceRanges", [])]
    assert rule.inputs["sourceRanges"] == [IAP_TCP_RANGE] and rule.inputs["direction"] == "INGRESS"
    assert rule.inputs["allows"] == [{"protocol": "tcp", "ports": [API_PORT]}] and not rule.inputs.get("denies")
    controller = _account(run, "controller")
    assert rule.inputs["targetServiceAccounts"] == [controller] != [_account(run, "fleet")]
    instances = run.of_type("gcp:compute/instance:Instance")
    assert {i.inputs["serviceAccount"]["email"] for i in instances} == {controller}  # the two controllers
    assert all(not nic.get("accessConfigs") for i in instances for nic in i.inputs["networkInterfaces"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_bastion_is_standard_with_tunneling_in_its_own_subnet(built: Built, stack: str) -> None:
    _, run = built(stack)
    (host,) = run.of_type("azure-native:network:BastionHost")
    assert host.inputs["sku"] == {"name": "Standard"} and host.inputs["enableTunneling"] is True
    assert not host.inputs["enableIpConnect"] and not host.inputs["enableShareableLink"]
    (ip_config,) = host.inputs["ipConfigurations"]
    vnet = _hub_vnet(run)
    assert ip_config["subnet"]["id"] == f"{vnet.name}-id/subnets/{BASTION_SUBNET}"
    (address,) = [ip for ip in run.of_type("azure-native:network:PublicIPAddress")
                  if ip_config["publicIPAddress"]["id"] == f"{ip.name}-id"]
    assert address.inputs["sku"] == {"name": "Standard"} and address.inputs["publicIPAllocationMethod"] == "Static"
    assert host.region == address.region == vnet.region
    subnets = {s["name"]: ipaddress.ip_network(s["addressPrefix"]) for s in vnet.inputs["subnets"]}
    bastion = subnets.pop(BASTION_SUBNET)
    assert bastion.prefixlen == 26 and bastion.subnet_of(ipaddress.ip_network(vnet.inputs["addressSpace"]
                                                                                ["addressPrefixes"][0]))
    assert not [name for name, subnet in subnets.items() if subnet.overlaps(bastion)]


@pytest.mark.parametrize("cidr", ["10.20.0.0/16", "10.40.0.0/23", "10.50.0.0/24"])
def test_the_bastion_subnet_fits_every_vnet_the_config_accepts(cidr: str) -> None:
    network = ipaddress.ip_network(cidr)
    subnets = carve(network)
    bastion = ipaddress.ip_network(subnets.bastion)
    others = [subnets.app, subnets.database, subnets.controller, subnets.gateway, subnets.resolver_inbound]
    assert bastion.prefixlen == 26 and bastion.subnet_of(network)
    assert not [other for other in others if ipaddress.ip_network(other).overlaps(bastion)]


@pytest.mark.parametrize("stack", STACKS)
def test_the_bastion_reaches_only_the_controllers_api_port(built: Built, stack: str) -> None:
    _, run = built(stack)
    bastion = next(s["addressPrefix"] for s in _hub_vnet(run).inputs["subnets"] if s["name"] == BASTION_SUBNET)
    rules = _bastion_rules(run, bastion)
    allows = [(name, rule) for name, rule in rules if rule["access"] == "Allow"]
    ((nsg, allow),) = allows
    assert (allow["protocol"], allow["destinationPortRange"], allow["direction"]) == ("Tcp", API_PORT, "Inbound")
    (controller_subnet,) = [s for s in _hub_vnet(run).inputs["subnets"] if s["name"] == "controller"]
    assert controller_subnet["networkSecurityGroup"]["id"] == f"{nsg}-id"
    app_nsgs = {n.name for n in run.of_type("azure-native:network:NetworkSecurityGroup")} - {nsg}
    denies = {name: rule for name, rule in rules if rule["access"] == "Deny"}
    assert set(denies) == {nsg, *app_nsgs}  # the controller subnet past the API port, and every app subnet
    for rule in denies.values():
        assert (rule["protocol"], rule["destinationPortRange"]) == ("*", "*")
        assert rule["priority"] < 65000  # before Azure's AllowVnetInBound
    assert allow["priority"] < denies[nsg]["priority"]


def test_the_access_export_and_the_plan_show_the_path(built: Built) -> None:
    _, run = built("production")
    (host,) = run.of_type("azure-native:network:BastionHost")
    gcp, azure = run.outputs["access"]["gcp"], run.outputs["access"]["azure"]
    assert gcp == {"path": "iap", "project": "drainctl-production", "source_range": IAP_TCP_RANGE,
                   "api_port": DEFAULT_API_PORT}
    assert (azure["path"], azure["bastion"], azure["api_port"]) == ("bastion", host.outputs["name"],
                                                                     DEFAULT_API_PORT)
    bastion = next(s["addressPrefix"] for s in _hub_vnet(run).inputs["subnets"] if s["name"] == BASTION_SUBNET)
    gcp_note, azure_note = access_notes(run)
    assert gcp_note.startswith(f"GCP on-call access: IAP TCP forwarding from {IAP_TCP_RANGE} -> tcp:{API_PORT} "
                               f"on {_account(run, 'controller')} only")
    assert azure_note.startswith(
        f"Azure on-call access: Bastion {host.name} (Standard; tunneling True, IP connect False, shareable links "
        f"False) in {BASTION_SUBNET} {bastion} -> tcp:{API_PORT} (azure-centralus-controller-nsg) only; "
        "everything else refused by azure-centralus-app-nsg, azure-centralus-controller-nsg, "
    ), azure_note


@pytest.mark.skipif("api_port" not in ControllerSettings.model_fields,
                    reason="the stack config has no drainctl:controller.api_port yet (branch ctlconfig)")
def test_the_path_opens_the_api_port_the_stack_config_names() -> None:
    document = stack_document("staging")
    document.setdefault("drainctl:controller", {})["api_port"] = 9444
    run = run_offline(parse_document(document, stack="staging"))
    gcp_note, azure_note = access_notes(run)
    assert "-> tcp:9444 on " in gcp_note and "-> tcp:9444 (" in azure_note
    assert {cloud["api_port"] for cloud in run.outputs["access"].values()} == {9444}


@pytest.mark.parametrize("stack", STACKS)
def test_the_fleet_reaches_the_controllers_api_port_to_push_its_notices(built: Built, stack: str) -> None:
    """GCP denies ingress by default: without this rule every agent's push would be dropped."""
    _, run = built(stack)
    (rule,) = [r for r in run.of_type("gcp:compute/firewall:Firewall")
               if r.inputs.get("sourceServiceAccounts") == [_account(run, "fleet")]
               and r.inputs.get("targetServiceAccounts") == [_account(run, "controller")]]
    assert rule.inputs["allows"] == [{"protocol": "tcp", "ports": [API_PORT]}] and rule.inputs["direction"] == "INGRESS"
