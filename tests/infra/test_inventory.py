"""Under Pulumi's mocks, each stack creates what its config says, with the incident's lessons in every resource."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from infra import proximity
from infra.azure.network import carve
from infra.config import StackConfig
from infra.mocks import OfflineRun
from infra.plan import policy_violations

Built = Callable[[str], tuple[StackConfig, OfflineRun]]
STACKS = ("staging", "production", "production-cloudsql")

GCP_PER_REGION = (
    "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/router:Router",
    "gcp:compute/routerNat:RouterNat",
    "gcp:compute/instanceTemplate:InstanceTemplate",
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager",
    "gcp:compute/regionAutoscaler:RegionAutoscaler",
)
AZURE_PER_REGION = (
    "azure-native:resources:ResourceGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:LoadBalancer",
    "azure-native:compute:VirtualMachineScaleSet",
)
GCP_EDGE = (
    "gcp:compute/backendService:BackendService",
    "gcp:compute/uRLMap:URLMap",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy",
    "gcp:compute/globalForwardingRule:GlobalForwardingRule",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate",
    "gcp:compute/securityPolicy:SecurityPolicy",
)
GCP_SQL = "gcp:sql/databaseInstance:DatabaseInstance"
AZURE_PG = "azure-native:dbforpostgresql:Server"


def _regions_of(run: OfflineRun, resource_type: str) -> Counter[str]:
    """Per region; Cloud Routers counted are the regions' NAT routers (the VPN's BGP router is counted apart)."""
    resources = run.of_type(resource_type)
    if resource_type == "gcp:compute/router:Router":
        resources = [router for router in resources if "bgp" not in router.inputs]
    if resource_type == "azure-native:network:NetworkSecurityGroup":  # the app's (the hub adds its controllers')
        resources = [nsg for nsg in resources if nsg.name.endswith("-app-nsg")]
    return Counter(resource.region for resource in resources)


@pytest.mark.parametrize("stack", STACKS)
def test_inventory_matches_the_config_by_type_and_region(built: Built, stack: str) -> None:
    config, run = built(stack)
    gcp_regions, azure_regions = config.regions("gcp"), config.regions("azure")
    for resource_type in GCP_PER_REGION:
        assert _regions_of(run, resource_type) == Counter(gcp_regions), resource_type
    for resource_type in AZURE_PER_REGION:
        assert _regions_of(run, resource_type) == Counter(azure_regions), resource_type
    frontends = [ip for ip in run.of_type("azure-native:network:PublicIPAddress") if not ip.name.endswith("-egress-ip")
                 and not ip.name.startswith("azure-vpn-") and not ip.name.endswith("-bastion-ip")]
    assert Counter(ip.region for ip in frontends) == Counter(azure_regions)
    for resource_type in GCP_EDGE:
        assert _regions_of(run, resource_type) == Counter({"global": 1}), resource_type
    (backend,) = run.of_type("gcp:compute/backendService:BackendService")
    assert len(backend.inputs["backends"]) == len(gcp_regions)
    database_type = GCP_SQL if config.database.cloud == "gcp" else AZURE_PG
    assert _regions_of(run, database_type) == Counter(config.regions(config.database.cloud))
    assert not run.of_type(AZURE_PG if config.database.cloud == "gcp" else GCP_SQL)


@pytest.mark.parametrize("stack", STACKS)
def test_two_controller_vms_per_cloud_in_its_home_region(built: Built, stack: str) -> None:
    config, run = built(stack)
    home = {cloud: config.database.primary_region if config.database.cloud == cloud else config.regions(cloud)[0]
            for cloud in ("gcp", "azure")}
    gcp_vms = run.of_type("gcp:compute/instance:Instance")
    azure_vms = run.of_type("azure-native:compute:VirtualMachine")
    assert sorted(vm.inputs["labels"]["drainctl-role"] for vm in gcp_vms) == ["controller-active", "controller-standby"]
    assert {vm.region for vm in gcp_vms} == {home["gcp"]}
    assert sorted(vm.inputs["tags"]["drainctl-role"] for vm in azure_vms) == ["controller-active", "controller-standby"]
    assert {vm.region for vm in azure_vms} == {home["azure"]}
    assert _regions_of(run, "azure-native:network:NatGateway") == Counter({home["azure"]: 1})  # their egress
    for vm in gcp_vms:
        assert "drainctl run --config /etc/drainctl/controller.yaml" in vm.inputs["metadataStartupScript"]
        assert "accessConfigs" not in vm.inputs["networkInterfaces"][0]  # no external address


@pytest.mark.parametrize("stack", STACKS)
def test_every_gcp_template_has_graceful_shutdown_for_the_budgets_notice(built: Built, stack: str) -> None:
    config, run = built(stack)
    for template in run.of_type("gcp:compute/instanceTemplate:InstanceTemplate"):
        shutdown = template.inputs["scheduling"]["gracefulShutdown"]
        assert shutdown["enabled"] is True
        assert shutdown["maxDuration"]["seconds"] == config.budget.platform_notice_s
        script = template.inputs["metadataStartupScript"]
        assert "drainctl agent --config /etc/drainctl/agent.yaml" in script
        assert "ExecStart=" + config.app.server.command in script


@pytest.mark.parametrize("stack", STACKS)
def test_every_mig_surges_before_removing_and_autoheals_on_healthz(built: Built, stack: str) -> None:
    _, run = built(stack)
    (liveness,) = [c for c in run.of_type("gcp:compute/healthCheck:HealthCheck") if "healthz" in c.name]
    for group in run.of_type("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"):
        policy = group.inputs["updatePolicy"]
        assert (policy["type"], policy["minimalAction"]) == ("PROACTIVE", "REPLACE")
        assert policy["maxUnavailableFixed"] == 0
        assert policy["maxSurgeFixed"] >= 3  # regional MIGs: 0 or at least the number of zones
        assert group.inputs["autoHealingPolicies"]["healthCheck"] == f"{liveness.name}-id"


@pytest.mark.parametrize("stack", STACKS)
def test_gcp_backend_caps_sockets_long_and_drains_for_the_notice(built: Built, stack: str) -> None:
    config, run = built(stack)
    (backend,) = run.of_type("gcp:compute/backendService:BackendService")
    assert config.gcp is not None
    assert backend.inputs["timeoutSec"] == config.gcp.websocket_lifetime_s
    assert backend.inputs["connectionDrainingTimeoutSec"] == config.budget.platform_notice_s
    (readiness,) = [c for c in run.of_type("gcp:compute/healthCheck:HealthCheck") if "readyz" in c.name]
    assert readiness.inputs["httpHealthCheck"]["requestPath"] == "/readyz"
    assert backend.inputs["healthChecks"] == f"{readiness.name}-id"
    (armor,) = run.of_type("gcp:compute/securityPolicy:SecurityPolicy")
    (throttle,) = [rule for rule in armor.inputs["rules"] if rule["action"] == "throttle"]
    assert throttle["rateLimitOptions"]["rateLimitThreshold"]["intervalSec"] == 10
    assert "/socket" in throttle["match"]["expr"]["expression"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_azure_lb_rule_resets_tcp_at_the_budgets_idle_timeout(built: Built, stack: str) -> None:
    config, run = built(stack)
    for balancer in run.of_type("azure-native:network:LoadBalancer"):
        assert balancer.inputs["sku"]["name"] == "Standard"
        rules = balancer.inputs["loadBalancingRules"]
        assert rules
        for rule in rules:
            assert rule["enableTcpReset"] is True
            assert rule["idleTimeoutInMinutes"] * 60 == config.budget.lb_idle_timeout_s
        assert [probe["requestPath"] for probe in balancer.inputs["probes"]] == ["/readyz"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_readiness_check_is_the_budgets_deregistration_time(built: Built, stack: str) -> None:
    """The drain waits `lb_deregistration_s` for these checks: their numbers come from the same budget."""
    config, run = built(stack)
    b = config.budget
    (readiness,) = [c for c in run.of_type("gcp:compute/healthCheck:HealthCheck") if "readyz" in c.name]
    gcp = readiness.inputs
    assert (gcp["checkIntervalSec"], gcp["unhealthyThreshold"], gcp["timeoutSec"]) == (
        b.lb_check_interval_s, b.lb_unhealthy_threshold, b.lb_check_timeout_s)
    assert gcp["checkIntervalSec"] * gcp["unhealthyThreshold"] + gcp["timeoutSec"] == b.lb_deregistration_s
    for balancer in run.of_type("azure-native:network:LoadBalancer"):
        (probe,) = balancer.inputs["probes"]
        assert (probe["intervalInSeconds"], probe["numberOfProbes"], probe["probeThreshold"]) == (
            b.lb_check_interval_s, b.lb_unhealthy_threshold, b.lb_unhealthy_threshold)


@pytest.mark.parametrize("stack", STACKS)
def test_every_scale_set_has_the_terminate_notification_with_the_budgets_timeout(built: Built, stack: str) -> None:
    config, run = built(stack)
    expected = f"PT{int(config.budget.platform_notice_s // 60)}M"
    for scale_set in run.of_type("azure-native:compute:VirtualMachineScaleSet"):
        profile = scale_set.inputs["virtualMachineProfile"]
        notice = profile["scheduledEventsProfile"]["terminateNotificationProfile"]
        assert notice == {"enable": True, "notBeforeTimeout": expected}
        (health,) = profile["extensionProfile"]["extensions"]
        assert (health["type"], health["settings"]["requestPath"]) == ("ApplicationHealthLinux", "/readyz")
        assert scale_set.inputs["upgradePolicy"]["rollingUpgradePolicy"]["maxSurge"] is True
        assert scale_set.inputs["overprovision"] is False


def _database_hosts(config: StackConfig, run: OfflineRun) -> dict[str, tuple[str, str, bool]]:
    """host -> (cloud, region, is_primary) for every database instance the stack creates."""
    hosts = {}
    for instance in run.of_type(GCP_SQL):
        primary = "masterInstanceName" not in instance.inputs
        hosts[instance.outputs["privateIpAddress"]] = ("gcp", instance.region, primary)
    for server in run.of_type(AZURE_PG):
        primary = server.inputs["createMode"] != "Replica"
        hosts[server.outputs["fullyQualifiedDomainName"]] = ("azure", server.region, primary)
    return hosts


@pytest.mark.parametrize("stack", STACKS)
def test_every_regions_read_host_is_its_own_replica_or_the_declared_nearest(built: Built, stack: str) -> None:
    config, run = built(stack)
    hosts = _database_hosts(config, run)
    routing = run.outputs["routing"]
    home = config.database.cloud
    assert set(routing) == set(config.regions("gcp")) | set(config.regions("azure"))
    for region, entry in routing.items():
        assert hosts[entry["write_host"]] == (home, config.database.primary_region, True)
        cloud, read_region, _ = hosts[entry["read_host"]]
        assert cloud == home
        if region in config.regions(home):
            assert read_region == region
        else:
            other = "azure" if home == "gcp" else "gcp"
            assert read_region == proximity.nearest(other, region, config.regions(home))


@pytest.mark.parametrize("stack", STACKS)
def test_database_password_is_a_secret_and_no_generated_secret_leaks(built: Built, stack: str) -> None:
    config, run = built(stack)
    if config.database.cloud == "gcp":
        (user,) = run.of_type("gcp:sql/user:User")
        assert "password" in user.secret_paths
    else:
        for server in run.of_type(AZURE_PG):
            if server.inputs["createMode"] != "Replica":
                assert "administratorLoginPassword" in server.secret_paths
    generated = [p.outputs["result"] for p in run.of_type("random:index/randomPassword:RandomPassword")]
    vpn_keys = 2 if config.gcp and config.azure else 0  # one IKE pre-shared key per tunnel
    assert len(generated) == 5 + vpn_keys  # agent, app admin, API and push tokens; the database password
    for resource in run.custom():
        for path, text in _strings(resource.inputs):
            if any(path == secret or path.startswith(secret + ".") for secret in resource.secret_paths):
                continue
            assert not any(value in text for value in generated), f"{resource.name}.{path} carries a secret"
    assert not any(value in repr(run.outputs) for value in generated)


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [item for key, inner in value.items() for item in _strings(inner, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [item for index, inner in enumerate(value) for item in _strings(inner, f"{path}[{index}]")]
    return [(path, value)] if isinstance(value, str) else []


def _ports(rules: list[dict[str, Any]]) -> set[str]:
    return {port for rule in rules for port in rule.get("ports", [])}


@pytest.mark.parametrize("stack", STACKS)
def test_agent_port_is_closed_to_everything_but_the_controller(built: Built, stack: str) -> None:
    config, run = built(stack)
    agent = str(config.app.agent_port)
    (controller,) = [a for a in run.of_type("gcp:serviceaccount/account:Account") if "controller" in a.name]
    firewalls = run.of_type("gcp:compute/firewall:Firewall")
    openers = [rule for rule in firewalls if agent in _ports(rule.inputs.get("allows", []))]
    assert openers
    for rule in openers:
        assert rule.inputs["sourceServiceAccounts"] == [controller.outputs["email"]]
        assert not rule.inputs.get("sourceRanges") and not rule.inputs.get("sourceTags")
    (deny,) = [rule for rule in firewalls if agent in _ports(rule.inputs.get("denies", []))]
    assert deny.inputs["sourceRanges"] == ["0.0.0.0/0"]
    assert all(rule.inputs["priority"] < deny.inputs["priority"] for rule in openers)

    assert config.azure is not None
    home = config.database.primary_region if config.database.cloud == "azure" else config.regions("azure")[0]
    (hub,) = [region for region in config.azure.regions if region.name == home]
    for nsg in run.of_type("azure-native:network:NetworkSecurityGroup"):
        if not nsg.name.endswith("-app-nsg"):
            continue  # the hub's controller subnet: no agent there (test_access.py)
        rules = [r for r in nsg.inputs["securityRules"] if r["destinationPortRange"] == agent]
        allows = [r for r in rules if r["access"] == "Allow"]
        (deny_rule,) = [r for r in rules if r["access"] == "Deny"]
        assert [r["sourceAddressPrefix"] for r in allows] == [carve(hub.cidr).controller]
        assert deny_rule["sourceAddressPrefix"] == "*"
        assert allows[0]["priority"] < deny_rule["priority"] < 65000  # before Azure's AllowVnetInBound


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_passes_every_policy_of_the_pack(built: Built, stack: str) -> None:
    config, run = built(stack)
    assert policy_violations(config, run) == []
