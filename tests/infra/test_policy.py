"""Every policy of the pack rejects a bad resource and accepts a good one, called directly and through the pack."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from controller.core.budget import Budget
from infra.config import StackConfig
from infra.mocks import OfflineRun
from infra.policy import validators as v
from tests.infra.conftest import REPO

BUDGET = Budget()  # lb idle 240 s, heartbeat 10 s, drain 30 + verify 10 + margin 30 = 70 s, notice 600 s


def _vmss(notice: dict[str, Any]) -> dict[str, Any]:
    return {"virtualMachineProfile": {"scheduledEventsProfile": {"terminateNotificationProfile": notice}}}


def _template(shutdown: dict[str, Any]) -> dict[str, Any]:
    return {"scheduling": {"gracefulShutdown": shutdown}}


def _custom_data(script: str) -> dict[str, Any]:
    return {"virtualMachineProfile": {"osProfile": {"customData": base64.b64encode(script.encode()).decode()}}}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


RENDERED = "#!/bin/bash\n# drainctl boot script, rendered by infra/scripts.py. Idempotent.\nset -euo pipefail\n"
VERIFIED_FETCH = f"fetch_verified {'0' * 64} /var/lib/drainctl/w.tar.gz gcp_object bucket drainctl/w.tar.gz\n"
OFFLINE_PIP = "/opt/drainctl/bin/pip install --quiet --no-index --find-links /var/lib/drainctl/wheelhouse drainctl\n"


def _armor(interval: int) -> dict[str, Any]:
    threshold = {"count": 40, "intervalSec": interval}
    return {"rules": [{"priority": 1000, "action": "throttle", "rateLimitOptions": {"rateLimitThreshold": threshold}}]}


def _health(version: str) -> dict[str, Any]:
    extension = {"type": "ApplicationHealthLinux", "typeHandlerVersion": version, "settings": {"port": 4000}}
    return {"virtualMachineProfile": {"extensionProfile": {"extensions": [extension]}}}


def _rolling(capacity: int, percent: int) -> dict[str, Any]:
    policy = {"maxUnhealthyInstancePercent": percent, "maxUnhealthyUpgradedInstancePercent": percent}
    return {"sku": {"capacity": capacity}, "zones": ["1", "2", "3"],
            "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": policy}}


def _mig(zones: list[str], surge: int) -> dict[str, Any]:
    return {"distributionPolicyZones": zones, "updatePolicy": {"maxSurgeFixed": surge, "maxUnavailableFixed": 0}}


GOOD_LB = {
    "loadBalancingRules": [{"name": "ws", "enableTcpReset": True, "idleTimeoutInMinutes": 4}],
    "outboundRules": [{"name": "egress", "enableTcpReset": True}],
}
GOOD_SCRIPT = (
    "#!/bin/bash\n(umask 077; gcloud secrets versions access latest --project p --secret drainctl-agent-token"
    " > /etc/drainctl/agent-token.new)\ntoken_file: /etc/drainctl/agent-token\n"
    "DATABASE_PASSWORD_FILE=/etc/drainctl/db-password\n"
)

# (rule, resource type, good props, bad props, what the violation says, secret paths of the good resource)
CASES: list[tuple[v.ResourceRule, str, dict[str, Any], dict[str, Any], str, tuple[str, ...]]] = [
    (v.lb_timeouts, v.AZURE_LB, GOOD_LB,
     {"loadBalancingRules": [{"name": "ws", "enableTcpReset": False, "idleTimeoutInMinutes": 4}]},
     "enableTcpReset", ()),
    (v.lb_timeouts, v.AZURE_LB, GOOD_LB,
     {"loadBalancingRules": [{"name": "ws", "enableTcpReset": True, "idleTimeoutInMinutes": 30}]},
     "exceeds the budget's lb_idle_timeout_s", ()),
    (v.lb_timeouts, v.AZURE_LB, GOOD_LB,
     {**GOOD_LB, "outboundRules": [{"name": "egress"}]}, "outbound rule egress", ()),
    (v.lb_timeouts, v.GCP_BACKEND, {"timeoutSec": 86400, "connectionDrainingTimeoutSec": 600},
     {"connectionDrainingTimeoutSec": 600}, "timeoutSec (30) caps every WebSocket", ()),
    (v.lb_timeouts, v.GCP_BACKEND, {"timeoutSec": 86400, "connectionDrainingTimeoutSec": 600},
     {"timeoutSec": 86400, "connectionDrainingTimeoutSec": 0}, "connectionDrainingTimeoutSec (0)", ()),
    (v.termination_notices, v.AZURE_VMSS, _vmss({"enable": True, "notBeforeTimeout": "PT10M"}),
     _vmss({"enable": False, "notBeforeTimeout": "PT10M"}), "terminate notification is off", ()),
    (v.termination_notices, v.AZURE_VMSS, _vmss({"enable": True, "notBeforeTimeout": "PT5M"}),
     _vmss({"enable": True, "notBeforeTimeout": "PT20M"}), "must be from PT5M to PT15M", ()),
    (v.termination_notices, v.AZURE_VMSS, _vmss({"enable": True, "notBeforeTimeout": "PT15M"}),
     _vmss({"enable": True, "notBeforeTimeout": "PT1M"}), "drain_deadline_s + verify_s + margin_s (70 s)", ()),
    (v.termination_notices, v.GCP_TEMPLATE, _template({"enabled": True, "maxDuration": {"seconds": 600}}),
     _template({"enabled": False}), "graceful shutdown is off", ()),
    (v.termination_notices, v.GCP_TEMPLATE, _template({"enabled": True, "maxDuration": {"seconds": 600}}),
     _template({"enabled": True, "maxDuration": {"seconds": 60}}), "(60 s) must exceed drain_deadline_s", ()),
    (v.private_databases, v.GCP_SQL,
     {"settings": {"ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "vpc"}}},
     {"settings": {"ipConfiguration": {"privateNetwork": "vpc"}}}, "public IPv4 address", ()),
    (v.private_databases, v.AZURE_POSTGRES,
     {"network": {"publicNetworkAccess": "Disabled", "delegatedSubnetResourceId": "subnet"}},
     {"network": {"publicNetworkAccess": "Enabled", "delegatedSubnetResourceId": "subnet"}}, "public network access",
     ()),
    (v.secrets_kept_secret, "gcp:sql/user:User", {"name": "app", "password": "x" * 32},
     {"name": "app", "password": "x" * 32}, "password holds a secret", ("password",)),
    (v.secrets_kept_secret, v.AZURE_POSTGRES, {"administratorLoginPassword": "x" * 32},
     {"administratorLoginPassword": "x" * 32}, "administratorLoginPassword holds a secret",
     ("administratorLoginPassword",)),
    (v.secrets_kept_secret, v.GCP_TEMPLATE, {"metadataStartupScript": GOOD_SCRIPT},
     {"metadataStartupScript": GOOD_SCRIPT + "export PGPASSWORD=hunter2hunter2\n"}, "metadataStartupScript", ()),
    (v.secrets_kept_secret, v.AZURE_VMSS, _custom_data(GOOD_SCRIPT), _custom_data("db_password: hunter2hunter2"),
     "customData", ()),
    (v.secrets_kept_secret, v.GCP_TUNNEL, {"sharedSecret": "k" * 48}, {"sharedSecret": "k" * 48},
     "sharedSecret holds a secret", ("sharedSecret",)),
    # Issue 13's lessons, one rule each.
    (v.cloud_sql_edition, v.GCP_SQL,
     {"databaseVersion": "POSTGRES_17", "settings": {"tier": "db-custom-1-3840", "edition": "ENTERPRISE"}},
     {"databaseVersion": "POSTGRES_17", "settings": {"tier": "db-custom-1-3840"}},
     "needs edition ENTERPRISE, the instance has no edition (defaults to ENTERPRISE_PLUS", ()),
    (v.cloud_sql_edition, v.GCP_SQL,
     {"databaseVersion": "POSTGRES_17", "settings": {"tier": "db-perf-optimized-N-2"}},
     {"databaseVersion": "POSTGRES_17", "settings": {"tier": "db-perf-optimized-N-2", "edition": "ENTERPRISE"}},
     "needs edition ENTERPRISE_PLUS", ()),
    (v.armor_window, v.GCP_ARMOR, _armor(10), _armor(20), "intervalSec 20 is not one Cloud Armor accepts", ()),
    (v.immutable_boot_data, v.AZURE_VM,
     {"osProfile": {"customData": _b64("#cloud-config\nruncmd: [[/usr/local/sbin/drainctl-boot]]\n")},
      "userData": _b64(RENDERED)},
     {"osProfile": {"customData": _b64(RENDERED)}}, "customData cannot change after creation", ()),
    (v.health_probe_body, v.AZURE_VMSS, _health("1.0"), _health("2.0"), "ApplicationHealth extension 2.0", ()),
    (v.upgrade_fits_capacity, v.AZURE_VMSS, _rolling(2, 50), _rolling(2, 20),
     "maxUnhealthyInstancePercent (20%) is less than one VM at capacity 2", ()),
    (v.upgrade_fits_capacity, v.AZURE_VMSS, _rolling(2, 50), {**_rolling(2, 50), "zones": []},
     "no availability zones", ()),
    (v.surge_fits_zones, v.GCP_MIG, _mig(["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"], 4),
     _mig(["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"], 3),
     "maxSurgeFixed (3) must be 0 or at least the number of zones (4)", ()),
    (v.surge_fits_zones, v.GCP_MIG, _mig(["europe-west1-b"], 1), {"updatePolicy": {"maxSurgeFixed": 3}},
     "distributionPolicyZones is not pinned", ()),
    (v.key_vault_closed, v.AZURE_VAULT, {"properties": {"networkAcls": {"defaultAction": "Deny"}}},
     {"properties": {"enableRbacAuthorization": True}}, "Key Vault is open to every network", ()),
    (v.offline_install, v.GCP_TEMPLATE, {"metadataStartupScript": RENDERED + VERIFIED_FETCH + OFFLINE_PIP},
     {"metadataStartupScript": RENDERED + VERIFIED_FETCH + "/opt/drainctl/bin/pip install --quiet drainctl==0.1.0\n"},
     "without --no-index: it installs by name from a package index", ()),
    (v.offline_install, v.AZURE_VM, {"userData": _b64(RENDERED + VERIFIED_FETCH + OFFLINE_PIP)},
     {"userData": _b64(RENDERED + "azure_blob acct artifacts drainctl/w.tar.gz cid /tmp/w.tar.gz\n" + OFFLINE_PIP)},
     "fetches an artifact with azure_blob outside `fetch_verified <sha256>`", ()),
]


@pytest.mark.parametrize(
    ("rule", "resource_type", "good", "bad", "says", "secret_paths"),
    CASES,
    ids=[f"{rule.__name__}-{kind.rsplit(':', 1)[1]}-{says[:24]}" for rule, kind, _, _, says, _ in CASES],
)
def test_rule_rejects_bad_and_accepts_good(
    rule: v.ResourceRule, resource_type: str, good: dict[str, Any], bad: dict[str, Any], says: str,
    secret_paths: tuple[str, ...],
) -> None:
    assert rule(resource_type, good, v.Context(budget=BUDGET, secret_paths=secret_paths)) == []
    violations = rule(resource_type, bad, v.Context(budget=BUDGET))
    assert any(says in violation for violation in violations), violations


def test_every_resource_rule_of_the_pack_has_a_case() -> None:
    assert {rule for _, rule in v.RESOURCE_RULES.values()} == {case[0] for case in CASES}


FLEETS_AND_PRIMARY = [
    (v.GCP_MIG, {"region": "us-central1"}),
    (v.AZURE_VMSS, {"location": "centralus"}),
    (v.GCP_SQL, {"region": "us-central1"}),
]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ([(v.GCP_MIG, {"region": "europe-west1"})], "gcp region europe-west1 has an API fleet but no database"),
        ([(v.AZURE_VMSS, {"location": "northeurope"})], "azure region northeurope has an API fleet but none"),
        ([(v.GCP_SQL, {"region": "europe-west1"})], "expected exactly one database primary, found 2"),
    ],
)
def test_replica_rule_rejects_an_unserved_region_and_accepts_a_served_one(
    extra: list[tuple[str, dict[str, Any]]], says: str
) -> None:
    assert v.replica_per_region(FLEETS_AND_PRIMARY) == []
    served = [*FLEETS_AND_PRIMARY, (v.GCP_MIG, {"region": "europe-west1"}),
              (v.GCP_SQL, {"region": "europe-west1", "masterInstanceName": "primary"})]
    assert v.replica_per_region(served) == []
    violations = v.replica_per_region([*FLEETS_AND_PRIMARY, *extra])
    assert any(says in violation for violation in violations), violations


# The pack itself, as the Pulumi engine drives it: a gRPC Analyzer on a port it prints.


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    pack = subprocess.Popen(
        [sys.executable, str(REPO / "infra" / "policy" / "__main__.py")],
        cwd=REPO / "infra" / "policy",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pack.stdout is not None
        port = pack.stdout.readline().strip()  # blocks until the pack serves; ends empty if it crashed
        assert port.isdigit(), pack.stderr.read() if pack.stderr else "no port"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            budget = _struct({"budget": BUDGET.as_dict()})
            stub.Configure(
                analyzer_pb2.ConfigureAnalyzerRequest(
                    policyConfig={
                        name: analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY, properties=budget)
                        for name in v.RESOURCE_RULES
                    }
                )
            )
            yield stub
    finally:
        pack.kill()
        pack.wait(timeout=30)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource_type: str, props: dict[str, Any],
             secret_outputs: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    response = stub.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=resource_type,
            properties=_struct(props),
            urn=f"urn:pulumi:test::drainctl::{resource_type}::r",
            name="r",
            options=analyzer_pb2.AnalyzerResourceOptions(additionalSecretOutputs=list(secret_outputs)),
        )
    )
    return [(d.policyName, d.message) for d in response.diagnostics]


def test_pack_lists_every_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "drainctl"
    assert {policy.name for policy in info.policies} == {*v.RESOURCE_RULES, *v.STACK_RULES}
    assert {"replica-per-region", "cross-cloud-path"} <= set(v.STACK_RULES)


@pytest.mark.parametrize(
    ("rule", "resource_type", "good", "bad", "says", "secret_paths"),
    [case for case in CASES if case[3] is not case[2]],
    ids=[f"{case[0].__name__}-{case[4][:24]}" for case in CASES if case[3] is not case[2]],
)
def test_pack_rejects_bad_and_accepts_good(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, rule: v.ResourceRule, resource_type: str, good: dict[str, Any],
    bad: dict[str, Any], says: str, secret_paths: tuple[str, ...],
) -> None:
    policy = next(name for name, (_, r) in v.RESOURCE_RULES.items() if r is rule)
    assert [d for d in _analyze(analyzer, resource_type, good, secret_paths) if d[0] == policy] == []
    diagnostics = [d for d in _analyze(analyzer, resource_type, bad) if d[0] == policy]
    assert any(says in message for _, message in diagnostics), diagnostics


def test_pack_passes_the_production_stack_and_rejects_a_missing_replica(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, built: Callable[[str], tuple[StackConfig, OfflineRun]]
) -> None:
    _, run = built("production")
    resources = [(r.type, r.inputs) for r in run.custom() if not r.type.startswith("drainctl:")]

    def analyze_stack(items: list[tuple[str, Any]]) -> list[str]:
        request = analyzer_pb2.AnalyzeStackRequest(
            resources=[
                analyzer_pb2.AnalyzerResource(type=kind, properties=_struct(dict(props)), urn=f"urn:{i}", name=f"r{i}")
                for i, (kind, props) in enumerate(items)
            ]
        )
        return [d.message for d in analyzer.AnalyzeStack(request).diagnostics]

    assert analyze_stack(resources) == []
    without_eastasia_replica = [
        (kind, props) for kind, props in resources if not (kind == v.AZURE_POSTGRES and props["location"] == "eastasia")
    ]
    messages = analyze_stack(without_eastasia_replica)
    assert any("azure region eastasia has an API fleet but no database instance" in m for m in messages), messages
    assert any("gcp region asia-east1" in m for m in messages), messages
    without_vpn_gateway = [(kind, props) for kind, props in resources if kind != v.AZURE_VPN_GATEWAY]
    messages = analyze_stack(without_vpn_gateway)
    assert any("no active-active, BGP-enabled Azure VPN gateway" in m for m in messages), messages
