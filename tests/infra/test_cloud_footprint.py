"""Issue 13: what the real clouds would refuse or break, pinned under mocks (one test per finding), and the private
path between the clouds: every region's read host is reachable over networks and links the stack creates."""

from __future__ import annotations

import ast
import base64
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.core.errors import ConfigError
from infra import interconnect, scripts
from infra.config import StackConfig
from infra.mocks import OfflineRun, Recorded, run_offline
from infra.policy import validators as v
from tests.infra.conftest import parse_document, stack_document

Built = Callable[[str], tuple[StackConfig, OfflineRun]]
STACKS = ("staging", "production", "production-cloudsql")

AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_VMSS = "azure-native:compute:VirtualMachineScaleSet"
AZURE_VNET = "azure-native:network:VirtualNetwork"
AZURE_PEERING = "azure-native:network:VirtualNetworkPeering"
GCP_SUBNET = "gcp:compute/subnetwork:Subnetwork"
GCP_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
VPN_TYPES = (v.GCP_HA_VPN, v.GCP_TUNNEL, v.GCP_ROUTER_PEER, v.AZURE_VPN_GATEWAY, v.AZURE_VPN_CONNECTION)


def _id(resource: Recorded) -> str:
    """The resource's id as the program sees it (`resource.id` under the mocks)."""
    return f"{resource.name}-id"


def _one(run: OfflineRun, resource_type: str) -> Recorded:
    (resource,) = run.of_type(resource_type)
    return resource


# --- the findings -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["staging", "production-cloudsql"])
def test_cloud_sql_instances_state_the_edition_their_tier_needs(built: Built, stack: str) -> None:
    config, run = built(stack)
    instances = run.of_type(v.GCP_SQL)
    assert instances and config.database.version >= 16  # 16+ would default to ENTERPRISE_PLUS
    for instance in instances:  # replicas too: they do not inherit it
        assert instance.inputs["settings"]["tier"].startswith("db-custom-")
        assert instance.inputs["settings"]["edition"] == "ENTERPRISE"


@pytest.mark.parametrize("stack", STACKS)
def test_azure_controller_vms_carry_the_script_in_mutable_user_data(built: Built, stack: str) -> None:
    _, run = built(stack)
    vms = run.of_type(AZURE_VM)
    assert len(vms) == 2
    for vm in vms:
        assert vm.inputs["osProfile"]["customData"] == scripts.vm_bootstrap()  # constant: never an update
        script = base64.b64decode(vm.inputs["userData"]).decode()
        assert "drainctl run --config /etc/drainctl/controller.yaml" in script or "drainctl-controller" in script
        assert scripts.RENDERED_MARKER in script
    bootstrap = base64.b64decode(scripts.vm_bootstrap()).decode()
    assert scripts.IMDS_USER_DATA in bootstrap and scripts.RENDERED_MARKER not in bootstrap


def test_a_budget_change_leaves_the_controllers_custom_data_alone(built: Built) -> None:
    _, run = built("production")
    document = stack_document("production")
    document["drainctl:budget"]["margin_s"] = 40
    changed = run_offline(parse_document(document, stack="production"))
    before = {vm.name: vm.inputs for vm in run.of_type(AZURE_VM)}
    for vm in changed.of_type(AZURE_VM):
        assert vm.inputs["osProfile"]["customData"] == before[vm.name]["osProfile"]["customData"]
        assert vm.inputs["userData"] != before[vm.name]["userData"]


@pytest.mark.parametrize("stack", STACKS)
def test_scale_set_health_extension_reads_the_status_code_and_upgrades_survive_one_draining_vm(
    built: Built, stack: str
) -> None:
    config, run = built(stack)
    assert config.azure is not None
    capacity = {region.name: region.capacity for region in config.azure.regions}
    for scale_set in run.of_type(AZURE_VMSS):
        (health,) = scale_set.inputs["virtualMachineProfile"]["extensionProfile"]["extensions"]
        # 1.0: healthy on 2xx; /readyz answers plain text, which 2.0 would report as Unknown.
        assert (health["type"], health["typeHandlerVersion"]) == ("ApplicationHealthLinux", "1.0")
        assert health["settings"] == {
            "protocol": "http", "port": config.app.app_port, "requestPath": "/readyz",
            "intervalInSeconds": 5, "numberOfProbes": 1,
        }
        rolling = scale_set.inputs["upgradePolicy"]["rollingUpgradePolicy"]
        vms = capacity[scale_set.region]
        assert rolling["maxUnhealthyInstancePercent"] * vms / 100 >= 1
        assert rolling["maxUnhealthyUpgradedInstancePercent"] * vms / 100 >= 1


@pytest.mark.parametrize("stack", STACKS)
def test_migs_pin_their_zones_and_surge_by_them_and_scale_sets_span_zones(built: Built, stack: str) -> None:
    config, run = built(stack)
    assert config.gcp is not None and config.azure is not None
    zones = {region.name: list(region.zone_names) for region in config.gcp.regions}
    for group in run.of_type(v.GCP_MIG):
        assert group.inputs["distributionPolicyZones"] == zones[group.region]
        assert group.inputs["updatePolicy"]["maxSurgeFixed"] >= len(zones[group.region])
    assert zones.get("europe-west1", ["europe-west1-b", "europe-west1-c", "europe-west1-d"])[0] != "europe-west1-a"
    for scale_set in run.of_type(AZURE_VMSS):
        assert scale_set.inputs["zones"] == ["1", "2", "3"]
    home = next(region for region in config.gcp.regions if region.name == _one_region(run))
    assert sorted(vm.inputs["zone"] for vm in run.of_type(v.GCP_INSTANCE)) == list(home.zone_names[:2])


def _one_region(run: OfflineRun) -> str:
    (region,) = {vm.region for vm in run.of_type(v.GCP_INSTANCE)}
    return region


@pytest.mark.parametrize("stack", STACKS)
def test_autoscaler_cooldown_covers_the_boot(built: Built, stack: str) -> None:
    _, run = built(stack)
    delays = {group.region: group.inputs["autoHealingPolicies"]["initialDelaySec"] for group in run.of_type(v.GCP_MIG)}
    for scaler in run.of_type("gcp:compute/regionAutoscaler:RegionAutoscaler"):
        assert scaler.inputs["autoscalingPolicy"]["cooldownPeriod"] >= delays[scaler.region] >= 300


def test_armor_refuses_a_window_cloud_armor_does_not_take() -> None:
    document = stack_document("production")
    document["drainctl:gcp"]["socket_rate_limit"]["interval_s"] = 20
    with pytest.raises(ConfigError, match=r"socket_rate_limit\.interval_s.*10, 30, 60"):
        parse_document(document)


@pytest.mark.parametrize("stack", STACKS)
def test_key_vault_admits_only_the_stacks_subnets(built: Built, stack: str) -> None:
    _, run = built(stack)
    vault = _one(run, v.AZURE_VAULT)
    acls = vault.inputs["properties"]["networkAcls"]
    assert acls["defaultAction"] == "Deny"
    allowed = {rule["id"] for rule in acls["virtualNetworkRules"]}
    readers = set()
    for vnet in run.of_type(AZURE_VNET):
        for subnet in vnet.inputs["subnets"]:
            endpoints = {e["service"] for e in subnet.get("serviceEndpoints", [])}
            if subnet["name"] in ("app", "controller"):
                assert "Microsoft.KeyVault" in endpoints  # a network rule needs the subnet's service endpoint
            if subnet["name"] == "app" or (subnet["name"] == "controller" and vnet.region == vault.region):
                readers.add(f"{_id(vnet)}/subnets/{subnet['name']}")
    assert allowed == readers


@pytest.mark.parametrize("stack", ["staging", "production-cloudsql"])
def test_private_services_range_is_pinned_and_overlaps_nothing(built: Built, stack: str) -> None:
    config, run = built(stack)
    assert config.gcp is not None
    (peering_range,) = [a for a in run.of_type("gcp:compute/globalAddress:GlobalAddress") if a.inputs.get("purpose")]
    pinned = ipaddress.IPv4Network(f"{peering_range.inputs['address']}/{peering_range.inputs['prefixLength']}")
    assert pinned == config.gcp.private_services_cidr
    regions = [r.cidr for r in config.gcp.regions] + [r.cidr for r in (config.azure.regions if config.azure else ())]
    assert not any(pinned.overlaps(cidr) for cidr in regions)


def test_an_overlapping_private_services_range_is_refused() -> None:
    document = stack_document("staging")
    document["drainctl:gcp"]["private_services_cidr"] = "10.20.0.0/16"  # the Azure VNet
    with pytest.raises(ConfigError, match="private_services_cidr"):
        parse_document(document)


# --- the private path between the clouds ---------------------------------------------------------------------------


def _vnet_of(subnet_id: str) -> str:
    return subnet_id.rsplit("/subnets/", 1)[0]


def _peered(run: OfflineRun, a: str, b: str, *, via_gateway: bool) -> bool:
    """Peerings both ways between VNets `a` and `b`; with `via_gateway`, `b` (the spoke) uses `a`'s gateway."""
    by_name = {vnet.outputs["name"]: _id(vnet) for vnet in run.of_type(AZURE_VNET)}
    links = {(by_name[p.inputs["virtualNetworkName"]], p.inputs["remoteVirtualNetwork"]["id"]): p.inputs
             for p in run.of_type(AZURE_PEERING)}
    there, back = links.get((a, b)), links.get((b, a))
    if not (there and back):
        return False
    return not via_gateway or (there.get("allowGatewayTransit") is True and back.get("useRemoteGateways") is True)


def _source_network(run: OfflineRun, region: str) -> tuple[str, str]:
    """(cloud, network id) of the API fleet in `region`."""
    for template in run.of_type(GCP_TEMPLATE):
        if template.region == region:
            subnet_id = template.inputs["networkInterfaces"][0]["subnetwork"]
            (subnet,) = [s for s in run.of_type(GCP_SUBNET) if f"{s.name}-id" == subnet_id]
            return "gcp", subnet.inputs["network"]
    for scale_set in run.of_type(AZURE_VMSS):
        if scale_set.region == region:
            nic = scale_set.inputs["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0]
            return "azure", _vnet_of(nic["ipConfigurations"][0]["subnet"]["id"])
    raise AssertionError(f"no fleet in {region}")


def _database_network(run: OfflineRun, host: str) -> tuple[str, str]:
    for instance in run.of_type(v.GCP_SQL):
        if instance.outputs["privateIpAddress"] == host:
            return "gcp", instance.inputs["settings"]["ipConfiguration"]["privateNetwork"]
    for server in run.of_type(v.AZURE_POSTGRES):
        if server.outputs["fullyQualifiedDomainName"] == host:
            return "azure", _vnet_of(server.inputs["network"]["delegatedSubnetResourceId"])
    raise AssertionError(f"{host} is no database the stack creates")


def _vpn_hub(run: OfflineRun) -> tuple[str, str]:
    """The VPN's two ends, checked link by link: (GCP VPC id, Azure hub VNet id)."""
    gateway = _one(run, v.GCP_HA_VPN)
    azure_gateway = _one(run, v.AZURE_VPN_GATEWAY)
    assert azure_gateway.inputs["activeActive"] is True and azure_gateway.inputs["enableBgp"] is True
    azure_ips = {
        ip.outputs["ipAddress"] for ip in run.of_type("azure-native:network:PublicIPAddress")
        if _id(ip) in {c["publicIPAddress"]["id"] for c in azure_gateway.inputs["ipConfigurations"]}
    }
    peer = _one(run, "gcp:compute/externalVpnGateway:ExternalVpnGateway")
    assert {i["ipAddress"] for i in peer.inputs["interfaces"]} == azure_ips and len(azure_ips) == 2
    tunnels = run.of_type(v.GCP_TUNNEL)
    assert sorted(t.inputs["vpnGatewayInterface"] for t in tunnels) == [0, 1]
    assert all(t.inputs["vpnGateway"] == f"{gateway.name}-id" and "sharedSecret" in t.secret_paths for t in tunnels)
    peers = run.of_type(v.GCP_ROUTER_PEER)
    azure_bgp = {a for p in azure_gateway.inputs["bgpSettings"]["bgpPeeringAddresses"]
                 for a in p["customBgpIpAddresses"]}
    assert {p.inputs["peerIpAddress"] for p in peers} == azure_bgp
    assert {p.inputs["peerAsn"] for p in peers} == {azure_gateway.inputs["bgpSettings"]["asn"]}
    gcp_ips = {i["ipAddress"] for i in gateway.outputs["vpnInterfaces"]}
    locals_ = run.of_type("azure-native:network:LocalNetworkGateway")
    assert {g.inputs["gatewayIpAddress"] for g in locals_} == gcp_ips
    assert {g.inputs["bgpSettings"]["bgpPeeringAddress"] for g in locals_} == {p.inputs["ipAddress"] for p in peers}
    connections = run.of_type(v.AZURE_VPN_CONNECTION)
    assert len(connections) == 2 and all(c.inputs["enableBgp"] and "sharedKey" in c.secret_paths for c in connections)
    assert {c.inputs["localNetworkGateway2"]["id"] for c in connections} == {_id(g) for g in locals_}
    vpc = gateway.inputs["network"]
    return vpc, _vnet_of(azure_gateway.inputs["ipConfigurations"][0]["subnet"]["id"])


def _resolves_over_the_vpn(run: OfflineRun, host: str, hub_vnet: str) -> bool:
    """GCP forwards the host's zone to an inbound endpoint in the hub, whose VNet sees the private zone."""
    endpoints = {c["privateIpAddress"]: c["subnet"]["id"]
                 for e in run.of_type("azure-native:dnsresolver:InboundEndpoint") for c in e.inputs["ipConfigurations"]}
    for zone in run.of_type(v.GCP_DNS_ZONE):
        if not f"{host}.".endswith(zone.inputs["dnsName"]):
            continue
        for target in zone.inputs["forwardingConfig"]["targetNameServers"]:
            subnet = endpoints.get(target["ipv4Address"])
            linked = {link.inputs["virtualNetwork"]["id"] for link in
                      run.of_type("azure-native:privatedns:VirtualNetworkLink")}
            if subnet and _vnet_of(subnet) == hub_vnet and hub_vnet in linked and target["forwardingPath"] == "private":
                return True
    return False


def _reachable(config: StackConfig, run: OfflineRun, region: str, host: str) -> str:
    """The path from `region`'s fleet to `host`, proven from the recorded resources (or an assertion fails)."""
    cloud, network = _source_network(run, region)
    db_cloud, db_network = _database_network(run, host)
    if cloud == db_cloud:
        if network == db_network:
            return interconnect.LOCAL
        assert cloud == "azure" and (_peered(run, network, db_network, via_gateway=False)), (region, host)
        return interconnect.PEERING
    vpc, hub_vnet = _vpn_hub(run)
    gcp_network, azure_network = (network, db_network) if cloud == "gcp" else (db_network, network)
    assert gcp_network == vpc, f"{region}: the HA VPN is not on the VPC of {host}"
    assert azure_network == hub_vnet or _peered(run, hub_vnet, azure_network, via_gateway=True), region
    (router,) = [r for r in run.of_type("gcp:compute/router:Router") if r.inputs.get("bgp")]
    advertised = {r["range"] for r in router.inputs["bgp"].get("advertisedIpRanges", [])}
    if db_cloud == "azure":
        assert _resolves_over_the_vpn(run, host, hub_vnet), f"{region}: {host} does not resolve from GCP"
        assert interconnect.CLOUD_DNS_FORWARDER_RANGE in advertised  # the resolver's answers route back
    else:
        assert config.gcp is not None and str(config.gcp.private_services_cidr) in advertised
        (routes,) = run.of_type(v.GCP_PEERING_ROUTES)
        assert routes.inputs["exportCustomRoutes"] is True  # Cloud SQL learns the way back to Azure
    return interconnect.VPN


@pytest.mark.parametrize("stack", STACKS)
def test_every_regions_read_host_is_reachable_over_a_path_the_stack_creates(built: Built, stack: str) -> None:
    config, run = built(stack)
    for region, entry in run.outputs["routing"].items():
        path = _reachable(config, run, region, entry["read_host"])
        _reachable(config, run, region, entry["write_host"])
        # The output names the path the resources prove (plus the peering hop on the far side of a VPN).
        assert entry["read_path"] == path if path == interconnect.LOCAL else path in entry["read_path"], region


def test_production_routing_says_which_path_each_region_reads_over(built: Built) -> None:
    _, run = built("production")
    paths = {region: entry["read_path"] for region, entry in run.outputs["routing"].items()}
    assert paths["centralus"] == paths["northeurope"] == paths["eastasia"] == interconnect.LOCAL
    assert paths["us-central1"] == interconnect.VPN
    assert paths["europe-west1"] == "HA VPN, then VNet peering centralus -> northeurope"


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_other_clouds_controllers_reach_the_primary(built: Built, stack: str) -> None:
    config, run = built(stack)
    write_host = next(iter(run.outputs["routing"].values()))["write_host"]
    if config.database.cloud == "azure":
        (vm, _) = run.of_type(v.GCP_INSTANCE)
        subnet_id = vm.inputs["networkInterfaces"][0]["subnetwork"]
        (subnet,) = [s for s in run.of_type(GCP_SUBNET) if f"{s.name}-id" == subnet_id]
        assert subnet.inputs["network"] == _vpn_hub(run)[0]
        assert _resolves_over_the_vpn(run, write_host, _vpn_hub(run)[1])
    else:
        nic_subnets = {c["subnet"]["id"] for n in run.of_type("azure-native:network:NetworkInterface")
                       for c in n.inputs["ipConfigurations"]}
        assert {_vnet_of(s) for s in nic_subnets} == {_vpn_hub(run)[1]}


def test_a_stack_without_cross_cloud_reads_has_no_vpn() -> None:
    document = stack_document("staging")
    del document["drainctl:azure"]
    run = run_offline(parse_document(document, stack="staging-gcp-only"))
    for resource_type in (*VPN_TYPES, v.GCP_DNS_ZONE, "azure-native:dnsresolver:DnsResolver"):
        assert not run.of_type(resource_type), resource_type
    assert {entry["read_path"] for entry in run.outputs["routing"].values()} == {interconnect.LOCAL}
    assert not [r for r in run.of_type("random:index/randomPassword:RandomPassword") if "vpn" in r.name]


def _props(run: OfflineRun) -> list[tuple[str, Any]]:
    return [(r.type, r.inputs) for r in run.custom()]


def test_the_pack_refuses_a_cross_cloud_stack_without_its_vpn(built: Built) -> None:
    _, run = built("production")
    assert v.cross_cloud_path(_props(run)) == []
    without = [(kind, props) for kind, props in _props(run) if kind not in (v.GCP_DNS_ZONE, v.AZURE_VPN_GATEWAY)]
    problems = v.cross_cloud_path(without)
    assert any("active-active" in p for p in problems) and any("forwarding zone" in p for p in problems)


# --- TLS: where it terminates, with health checks on a plain port ------------------------------------------------


def _azure_boot_script(scale_set: Recorded) -> str:
    document = yaml.safe_load(base64.b64decode(scale_set.inputs["virtualMachineProfile"]["osProfile"]["customData"]))
    return str(document["write_files"][0]["content"])


def _heredoc(script: str, path: str) -> str:
    match = re.search(rf"cat > {re.escape(path)} <<'DRAINCTL_EOF'\n(.*?)\nDRAINCTL_EOF", script, re.S)
    assert match, f"{path} is not written by the script"
    return match.group(1)


@pytest.mark.parametrize("stack", STACKS)
def test_tls_terminates_at_the_gcp_lb_and_on_the_azure_vms_with_plain_health_checks(built: Built, stack: str) -> None:
    config, run = built(stack)
    app, tls = config.app.app_port, config.app.tls_port
    proxy = _one(run, "gcp:compute/targetHttpsProxy:TargetHttpsProxy")
    certificate = _one(run, "gcp:compute/managedSslCertificate:ManagedSslCertificate")
    assert proxy.inputs["sslCertificates"] == [_id(certificate)]
    assert _one(run, "gcp:compute/backendService:BackendService").inputs["protocol"] == "HTTP"
    for check in run.of_type("gcp:compute/healthCheck:HealthCheck"):
        assert check.inputs["httpHealthCheck"]["port"] == app
    for template in run.of_type(GCP_TEMPLATE):
        assert "haproxy" not in template.inputs["metadataStartupScript"]  # the GCP LB terminates TLS
    for balancer in run.of_type("azure-native:network:LoadBalancer"):
        (rule,) = balancer.inputs["loadBalancingRules"]
        assert (rule["frontendPort"], rule["backendPort"]) == (443, tls)
        (probe,) = balancer.inputs["probes"]
        assert (probe["protocol"], probe["port"], probe["requestPath"]) == ("Http", app, "/readyz")
    for nsg in run.of_type("azure-native:network:NetworkSecurityGroup"):
        if not nsg.name.endswith("-app-nsg"):
            continue  # the hub's controller subnet opens nothing to the internet (test_access.py)
        from_internet = {r["destinationPortRange"] for r in nsg.inputs["securityRules"]
                         if r["sourceAddressPrefix"] == "Internet" and r["access"] == "Allow"}
        assert from_internet == {str(tls)}  # plain HTTP is not reachable from the internet
    for scale_set in run.of_type(AZURE_VMSS):
        script = _azure_boot_script(scale_set)
        haproxy = _heredoc(script, "/etc/haproxy/haproxy.cfg")
        assert f"bind :{tls} ssl crt /etc/drainctl/tls.pem" in haproxy
        assert f"server app 127.0.0.1:{app}" in haproxy
        assert f"timeout tunnel {config.budget.lb_idle_timeout_s:g}s" in haproxy
        assert "Before=drainctl-api.service drainctl-agent.service" in script  # stopped after the drain
        assert "azure_secret " in script and "tls-certificate" in script


def test_the_azure_tls_terminator_config_is_accepted_by_haproxy(built: Built, tmp_path: Path) -> None:
    assert shutil.which("haproxy") and shutil.which("openssl"), "needs haproxy and openssl (make setup)"
    _, run = built("production")
    (scale_set, *_) = run.of_type(AZURE_VMSS)
    pem = tmp_path / "tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=api.example.com",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )
    pem.write_text((tmp_path / "cert.pem").read_text() + (tmp_path / "key.pem").read_text())
    config = _heredoc(_azure_boot_script(scale_set), "/etc/haproxy/haproxy.cfg").replace(
        "/etc/drainctl/tls.pem", str(pem)
    ).replace("log /dev/log local0", "log stdout format raw local0")
    (tmp_path / "haproxy.cfg").write_text(config + "\n")
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- typed nested inputs -------------------------------------------------------------------------------------------

_MAP_INPUTS = {"labels", "tags", "user_labels", "providers"}
"""Keyword arguments whose value is a plain string map by the SDKs' own types (`Mapping[str, Input[str]]`)."""


_SDK_MODULES = {"gcp", "azure", "compute", "random"}
"""How infra/ names the provider SDKs (`gcp.compute.X(...)`, `azure.network.X(...)`, `compute = azure.compute`)."""


def _sdk_root(func: Any) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def test_resource_inputs_are_built_with_the_sdks_typed_args_not_raw_dicts() -> None:
    """A raw dict passes mocks with any key; the SDKs' Args classes (and our TypedDicts) let mypy --strict check
    every key. No keyword argument of a call in infra/ is a dict literal, except string maps (labels, tags)."""
    offenders = []
    for path in sorted((Path(__file__).resolve().parents[2] / "infra").rglob("*.py")):
        if path.name in ("mocks.py", "plan.py", "validators.py", "config.py", "__main__.py"):
            continue  # not resource inputs: the mocks' records, the plan's report, the policy rules, the config
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _sdk_root(node.func) in _SDK_MODULES:
                for keyword in node.keywords:
                    if isinstance(keyword.value, ast.Dict | ast.DictComp) and keyword.arg not in _MAP_INPUTS:
                        offenders.append(f"{path.name}:{keyword.value.lineno} {keyword.arg}=")
    assert offenders == []


def test_a_vpn_hub_vnet_too_small_for_the_gateway_subnet_is_refused() -> None:
    document = stack_document("staging")
    document["drainctl:azure"]["regions"][0]["cidr"] = "10.20.0.0/24"  # /28 subnets: no room for a /27 gateway
    with pytest.raises(ConfigError, match=r"azure\.regions\[0\]\.cidr.*GatewaySubnet"):
        parse_document(document)
