"""Run the program under Pulumi's mocks and record what it would create: no CLI, no plugins, no credentials.

`run_offline(config)` builds the stack with `pulumi.runtime.set_mocks`, records every resource as the engine
would receive it (type, name, camelCase inputs, which inputs are secrets, its region) and resolves the stack
outputs. The offline plan prints this inventory; the tests assert on it; the policy validators run over it.
Computed outputs the program reads back (addresses, names, ids) get deterministic fake values here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _sync_await

from infra.config import StackConfig
from infra.program import build

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
"""How the Pulumi wire format marks a secret value (pulumi.runtime.rpc)."""

FAKE_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
FAKE_TENANT = "11111111-1111-1111-1111-111111111111"


@dataclass(frozen=True)
class Recorded:
    """One resource as the engine would see it."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    """camelCase inputs with secrets unwrapped (what a policy pack sees)."""
    secret_paths: frozenset[str]
    """Dotted input paths whose values were secrets, plus the resource's `additionalSecretOutputs`: what the
    engine keeps secret (and what a policy pack sees as `opts.additional_secret_outputs`)."""
    region: str
    """`region`/`location`/zone input, else (Azure) the region of the resource's provider, else `global`."""
    outputs: Mapping[str, Any]
    depends_on: frozenset[str] = frozenset()
    """Names of the resources this one waits for (explicit `depends_on` and the inputs' own resources)."""


@dataclass
class OfflineRun:
    resources: list[Recorded]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, resource_type: str) -> list[Recorded]:
        return [resource for resource in self.resources if resource.type == resource_type]

    def custom(self) -> Iterator[Recorded]:
        """Cloud resources (no providers, no components)."""
        return (resource for resource in self.resources if not resource.type.startswith("pulumi:providers:"))


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self._provider_regions: dict[str, str] = {}
        self._lock = threading.Lock()

    def add_secret_outputs(self, resource_type: str, name: str, outputs: frozenset[str]) -> None:
        with self._lock:
            for index, resource in enumerate(self.resources):
                if (resource.type, resource.name) == (resource_type, name):
                    paths = resource.secret_paths | outputs
                    self.resources[index] = dataclasses.replace(resource, secret_paths=paths)

    def add_dependencies(self, resource_type: str, name: str, names: frozenset[str]) -> None:
        with self._lock:
            for index, resource in enumerate(self.resources):
                if (resource.type, resource.name) == (resource_type, name):
                    self.resources[index] = dataclasses.replace(resource, depends_on=resource.depends_on | names)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        secret_paths: set[str] = set()
        inputs = _unwrap(args.inputs, "", secret_paths)
        resource_id = f"{args.name}-id"
        outputs = {**_as_outputs(inputs), **_computed(args.typ, args.name, inputs)}
        if args.typ.startswith("pulumi:providers:"):
            self._provider_regions[resource_id] = str(inputs.get("region") or inputs.get("location") or "global")
        region = _own_region(inputs) or self._provider_region(args)
        with self._lock:
            self.resources.append(Recorded(args.typ, args.name, inputs, frozenset(secret_paths), region, outputs))
        return resource_id, outputs

    def _provider_region(self, args: pulumi.runtime.MockResourceArgs) -> str:
        """Azure child resources (role assignments, secrets, peerings) sit in their provider's region; a GCP
        resource without a region or zone input is global (every regional one here names its region)."""
        if not args.typ.startswith("azure-native:"):
            return "global"
        return self._provider_regions.get((args.provider or "").rpartition("::")[2], "global")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "mock-client",
                "objectId": "mock-object",
                "subscriptionId": FAKE_SUBSCRIPTION,
                "tenantId": FAKE_TENANT,
            }, []
        return {}, []


class EngineLikeMonitor(MockMonitor):
    """The mock monitor, plus what the engine does with `additionalSecretOutputs`: those outputs come back secret.

    Without it a value like `RandomPassword.result` is plain under mocks, and tests could not tell whether the
    program keeps generated secrets secret all the way into the resources that use them.
    """

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self._recording = mocks

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        names = frozenset(str(urn).rpartition("::")[2] for urn in request.dependencies)
        self._recording.add_dependencies(request.type, request.name, names)
        secret = frozenset(request.additionalSecretOutputs)
        if not secret or request.type == "pulumi:pulumi:Stack":
            return response
        self._recording.add_secret_outputs(request.type, request.name, secret)
        state = rpc.deserialize_properties(response.object)
        wrapped = {key: {SECRET_SIG_KEY: SECRET_SIG, "value": value} if key in secret else value
                   for key, value in state.items()}
        return resource_pb2.RegisterResourceResponse(
            urn=response.urn, id=response.id, object=_sync_await(rpc.serialize_properties(wrapped, {}))
        )


def _ensure_event_loop() -> None:
    """Pulumi's mocks schedule on the thread's current event loop; after an `asyncio.run` elsewhere in the same
    process (another test, a CLI) there is none, so give the thread one."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def run_offline(config: StackConfig) -> OfflineRun:
    """Build `config`'s stack under mocks; the recorded inventory and the resolved stack outputs."""
    _ensure_event_loop()
    mocks = RecordingMocks()
    runtime_settings.ROOT.set(None)  # a fresh root stack per run, so runs in one process do not share URNs
    pulumi.runtime.set_mocks(
        mocks, project="drainctl", stack=config.stack, preview=False, monitor=EngineLikeMonitor(mocks)
    )
    run = OfflineRun(resources=mocks.resources)

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def program() -> pulumi.Output[None]:
        outputs = build(config)
        resolved = pulumi.Output.from_input(
            {"routing": outputs.routing, "endpoints": outputs.endpoints, "controllers": outputs.controllers,
             "access": outputs.access}
        )
        return resolved.apply(run.outputs.update)

    program()
    return run


def _unwrap(value: Any, path: str, secret_paths: set[str]) -> Any:
    if isinstance(value, pulumi.FileAsset):
        return {"asset": "file", "path": str(value.path)}  # plain data, as a policy pack's props are
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            secret_paths.add(path)
            return _unwrap(value.get("value"), path, secret_paths)
        return {key: _unwrap(item, f"{path}.{key}" if path else key, secret_paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_unwrap(item, f"{path}[{index}]", secret_paths) for index, item in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format carries every number as a float
    return value


def _as_outputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs echoed as outputs, where the provider's output shape differs from its input shape."""
    outputs = dict(inputs)
    identity = inputs.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        # azure-native takes a list of identity ids and returns a map id -> {principalId, clientId}.
        assigned: dict[str, dict[str, Any]] = {identity_id: {} for identity_id in identity["userAssignedIdentities"]}
        outputs["identity"] = {**identity, "userAssignedIdentities": assigned}
    return outputs


def _own_region(inputs: Mapping[str, Any]) -> str | None:
    for key in ("region", "location"):
        if isinstance(inputs.get(key), str) and inputs[key] != "global":
            return str(inputs[key])
    zone = inputs.get("zone")
    return str(zone).rsplit("-", 1)[0] if isinstance(zone, str) else None


def _fake_ip(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return f"10.{200 + digest[0] % 50}.{digest[1]}.{1 + digest[2] % 250}"


def _fake_public_ip(name: str, prefix: str) -> str:
    return f"{prefix}.{1 + hashlib.sha256(name.encode()).digest()[0] % 250}"


def _computed(resource_type: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Fake values for the outputs the program reads back."""
    own_name = str(inputs.get("name") or name)
    common: dict[str, Any] = {"name": own_name, "selfLink": f"https://mock/{own_name}"}
    extra = _COMPUTED.get(resource_type)
    return {**common, **(extra(name, inputs) if extra else {})}


def _azure_id(kind: str) -> Callable[[str, Mapping[str, Any]], dict[str, Any]]:
    def compute(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        group = inputs.get("resourceGroupName", "rg")
        return {"id": f"/subscriptions/{FAKE_SUBSCRIPTION}/resourceGroups/{group}/providers/{kind}/{name}"}

    return compute


def _with(base: Callable[[str, Mapping[str, Any]], dict[str, Any]], **more: Callable[[str], Any]) -> Callable[
    [str, Mapping[str, Any]], dict[str, Any]
]:
    def compute(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {**base(name, inputs), **{key: make(name) for key, make in more.items()}}

    return compute


_COMPUTED: dict[str, Callable[[str, Mapping[str, Any]], dict[str, Any]]] = {
    "random:index/randomPassword:RandomPassword": lambda name, _: {"result": f"mock-secret-{name}"},
    "random:index/randomString:RandomString": lambda name, _: {"result": "abc123"},
    "gcp:serviceaccount/account:Account": lambda name, inputs: {
        "email": f"{inputs.get('accountId', name)}@mock.iam.gserviceaccount.com"
    },
    "gcp:projects/iAMCustomRole:IAMCustomRole": lambda name, inputs: {
        "name": f"projects/{inputs.get('project')}/roles/{inputs.get('roleId')}"
    },
    "gcp:secretmanager/secret:Secret": lambda name, inputs: {"secretId": inputs.get("secretId", name)},
    "gcp:compute/globalAddress:GlobalAddress": lambda name, _: {"address": "203.0.113.10"},
    "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": lambda name, _: {
        "instanceGroup": f"https://mock/instanceGroups/{name}"
    },
    "gcp:compute/instanceTemplate:InstanceTemplate": lambda name, _: {"selfLinkUnique": f"https://mock/{name}?uid=1"},
    "gcp:sql/databaseInstance:DatabaseInstance": lambda name, _: {"privateIpAddress": _fake_ip(name)},
    "gcp:compute/instance:Instance": lambda name, inputs: {
        "networkInterfaces": [{**nic, "networkIp": _fake_ip(name)} for nic in inputs.get("networkInterfaces", [])]
    },
    "azure-native:resources:ResourceGroup": lambda name, _: {
        "id": f"/subscriptions/{FAKE_SUBSCRIPTION}/resourceGroups/{name}"
    },
    "azure-native:network:VirtualNetwork": _azure_id("Microsoft.Network/virtualNetworks"),
    "azure-native:network:NetworkSecurityGroup": _azure_id("Microsoft.Network/networkSecurityGroups"),
    "azure-native:network:PublicIPAddress": _with(
        _azure_id("Microsoft.Network/publicIPAddresses"), ipAddress=lambda name: _fake_public_ip(name, "198.51.100")
    ),
    "azure-native:network:VirtualNetworkGateway": _azure_id("Microsoft.Network/virtualNetworkGateways"),
    "azure-native:network:LocalNetworkGateway": _azure_id("Microsoft.Network/localNetworkGateways"),
    "azure-native:dnsresolver:DnsResolver": lambda name, inputs: {
        **_azure_id("Microsoft.Network/dnsResolvers")(name, inputs),
        "name": inputs.get("dnsResolverName", name),
    },
    "gcp:compute/haVpnGateway:HaVpnGateway": lambda name, _: {
        "vpnInterfaces": [
            {"id": index, "ipAddress": _fake_public_ip(f"{name}-{index}", "203.0.113")} for index in (0, 1)
        ]
    },
    "gcp:servicenetworking/connection:Connection": lambda name, _: {"peering": "servicenetworking-googleapis-com"},
    "azure-native:network:LoadBalancer": _azure_id("Microsoft.Network/loadBalancers"),
    "azure-native:network:NatGateway": _azure_id("Microsoft.Network/natGateways"),
    "azure-native:network:NetworkInterface": lambda name, inputs: {
        **_azure_id("Microsoft.Network/networkInterfaces")(name, inputs),
        "ipConfigurations": [
            {**config, "privateIPAddress": _fake_ip(name)} for config in inputs.get("ipConfigurations", [])
        ],
    },
    "azure-native:managedidentity:UserAssignedIdentity": _with(
        _azure_id("Microsoft.ManagedIdentity/userAssignedIdentities"),
        principalId=lambda name: f"principal-{name}",
        clientId=lambda name: f"client-{name}",
    ),
    "azure-native:authorization:RoleDefinition": _azure_id("Microsoft.Authorization/roleDefinitions"),
    "azure-native:keyvault:Vault": lambda name, inputs: {
        **_azure_id("Microsoft.KeyVault/vaults")(name, inputs),
        "name": inputs.get("vaultName", name),
    },
    "azure-native:keyvault:Secret": _azure_id("Microsoft.KeyVault/vaults/secrets"),
    "azure-native:privatedns:PrivateZone": lambda name, inputs: {
        **_azure_id("Microsoft.Network/privateDnsZones")(name, inputs),
        "name": inputs.get("privateZoneName", name),
    },
    "azure-native:storage:StorageAccount": lambda name, inputs: {
        **_azure_id("Microsoft.Storage/storageAccounts")(name, inputs),
        "name": inputs.get("accountName", name),
    },
    "azure-native:storage:BlobContainer": lambda name, inputs: {
        **_azure_id("Microsoft.Storage/storageAccounts/blobServices/containers")(name, inputs),
        "name": inputs.get("containerName", name),
    },
    "azure-native:dbforpostgresql:Server": lambda name, _: {
        "id": f"/subscriptions/{FAKE_SUBSCRIPTION}/providers/Microsoft.DBforPostgreSQL/flexibleServers/{name}",
        "fullyQualifiedDomainName": f"{name}.postgres.database.azure.com",
    },
}
