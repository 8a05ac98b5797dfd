"""Least-privilege identities on Azure: user-assigned managed identities for the fleet and the controller.

The controller's custom role holds only the reads it needs (it approves Terminate events through the agent's
IMDS call on the instance itself, not through ARM), and it is assigned on the fleet's resource groups only:

- `Microsoft.Compute/virtualMachineScaleSets/read`: find the fleet's scale sets.
- `Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read`: list instances and their model.
- `Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read`: power and health state.
- `Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read`: the agents' addresses.

Secrets live in one Key Vault (RBAC authorization) that admits only the fleet's and the controllers' subnets
(network rules: default Deny, `AzureServices` bypass for ARM's own writes of the secrets below; the subnets carry a
`Microsoft.KeyVault` service endpoint; source: pulumi_azure_native `keyvault.NetworkRuleSetArgs`,
https://learn.microsoft.com/azure/key-vault/general/network-security). Each identity is granted "Key Vault Secrets
User" on exactly the secrets its VMs read at boot. Secret values are marked secret outputs, so state and output
never show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

CONTROLLER_ACTIONS = (
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/instanceView/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read",
)
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
"""Built-in role "Key Vault Secrets User" (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles)."""
FLEET_SECRETS = ("agent-token", "app-admin-token", "db-password", "push-token")
TLS_SECRET = "tls-certificate"
"""The API's TLS certificate and key (one PEM) for the VMs' TLS terminator. The stack creates the secret with a
placeholder and never updates its value (`ignore_changes`): the SRE imports the real PEM once
(`az keyvault secret set --vault-name <vault> -n tls-certificate -f api.pem`, see docs/infra.md)."""
TLS_PLACEHOLDER = "replace me: az keyvault secret set -n tls-certificate -f <cert+key PEM>"
CONTROLLER_SECRETS = ("agent-token", "db-password", "api-token", "push-token")


@dataclass(frozen=True)
class AzureIdentityArgs:
    stack: str
    location: str
    resource_group_name: pulumi.Input[str]
    """The hub region's resource group: identities and the Key Vault live there."""
    fleet_resource_group_ids: Sequence[pulumi.Input[str]]
    secrets: Mapping[str, pulumi.Output[str]]
    reader_subnet_ids: Sequence[pulumi.Input[str]] = ()
    """Subnets whose VMs read the vault (every region's app subnet, the hub's controller subnet): the only
    sources its network rules admit."""


class AzureIdentity(pulumi.ComponentResource):
    fleet_identity_id: pulumi.Output[str]
    fleet_client_id: pulumi.Output[str]
    controller_identity_id: pulumi.Output[str]
    controller_client_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    fleet_principal_id: pulumi.Output[str]
    controller_principal_id: pulumi.Output[str]
    reads: dict[str, list[pulumi.Resource]]
    """Reader (`fleet`, `controller`) -> the secrets and grants its VMs read at boot (the VMs depend on them)."""

    def __init__(self, name: str, args: AzureIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        client = azure.authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        group, location = args.resource_group_name, args.location
        fleet = azure.managedidentity.UserAssignedIdentity(
            f"{name}-fleet", resource_group_name=group, location=location, opts=child
        )
        controller = azure.managedidentity.UserAssignedIdentity(
            f"{name}-controller", resource_group_name=group, location=location, opts=child
        )
        role = azure.authorization.RoleDefinition(
            f"{name}-controller-role",
            role_name=f"drainctl controller ({args.stack})",
            description="Read the API fleet's scale sets and instances; nothing else.",
            scope=client.subscription_id.apply(lambda sub: f"/subscriptions/{sub}"),
            permissions=[azure.authorization.PermissionArgs(actions=list(CONTROLLER_ACTIONS))],
            assignable_scopes=list(args.fleet_resource_group_ids),
            opts=child,
        )
        for index, group_id in enumerate(args.fleet_resource_group_ids):
            azure.authorization.RoleAssignment(
                f"{name}-controller-fleet-{index}",
                scope=group_id,
                role_definition_id=role.id,
                principal_id=controller.principal_id,
                principal_type="ServicePrincipal",
                opts=child,
            )
        # Vault names are global and at most 24 characters: drainctl-<stack prefix>-<random suffix>.
        suffix = random.RandomString(f"{name}-kv-suffix", length=6, special=False, upper=False, opts=child)
        vault = azure.keyvault.Vault(
            f"{name}-kv",
            resource_group_name=group,
            location=location,
            vault_name=suffix.result.apply(lambda tail: f"drainctl-{args.stack[:6]}-{tail}"),
            properties=azure.keyvault.VaultPropertiesArgs(
                tenant_id=client.tenant_id,
                sku=azure.keyvault.SkuArgs(family=azure.keyvault.SkuFamily.A, name=azure.keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                enable_purge_protection=True,
                network_acls=azure.keyvault.NetworkRuleSetArgs(
                    bypass=azure.keyvault.NetworkRuleBypassOptions.AZURE_SERVICES,
                    default_action=azure.keyvault.NetworkRuleAction.DENY,
                    virtual_network_rules=[
                        azure.keyvault.VirtualNetworkRuleArgs(id=subnet_id) for subnet_id in args.reader_subnet_ids
                    ],
                ),
            ),
            opts=child,
        )
        reader_role = client.subscription_id.apply(
            lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{KEY_VAULT_SECRETS_USER}"
        )
        readers = {"fleet": (fleet, FLEET_SECRETS), "controller": (controller, CONTROLLER_SECRETS)}
        self.reads = {reader: [] for reader in readers}
        for secret_name, value in args.secrets.items():
            secret = azure.keyvault.Secret(
                f"{name}-{secret_name}",
                resource_group_name=args.resource_group_name,
                vault_name=vault.name,
                secret_name=secret_name,
                properties=azure.keyvault.SecretPropertiesArgs(value=value),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["properties"]),
            )
            for reader, (identity, allowed) in readers.items():
                if secret_name in allowed:
                    self.reads[reader].append(secret)
                    self.reads[reader] += [azure.authorization.RoleAssignment(
                        f"{name}-{secret_name}-{reader}",
                        scope=secret.id,
                        role_definition_id=reader_role,
                        principal_id=identity.principal_id,
                        principal_type="ServicePrincipal",
                        opts=child,
                    )]
        tls = azure.keyvault.Secret(
            f"{name}-{TLS_SECRET}",
            resource_group_name=args.resource_group_name,
            vault_name=vault.name,
            secret_name=TLS_SECRET,
            properties=azure.keyvault.SecretPropertiesArgs(
                value=TLS_PLACEHOLDER, content_type="application/x-pem-file"
            ),
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["properties"], additional_secret_outputs=["properties"]
            ),
        )
        self.reads["fleet"] += [tls, azure.authorization.RoleAssignment(
            f"{name}-{TLS_SECRET}-fleet",
            scope=tls.id,
            role_definition_id=reader_role,
            principal_id=fleet.principal_id,
            principal_type="ServicePrincipal",
            opts=child,
        )]
        self.fleet_principal_id = fleet.principal_id
        self.controller_principal_id = controller.principal_id
        self.fleet_identity_id = fleet.id
        self.fleet_client_id = fleet.client_id
        self.controller_identity_id = controller.id
        self.controller_client_id = controller.client_id
        self.vault_name = vault.name
        self.register_outputs(
            {"fleet_identity_id": fleet.id, "controller_identity_id": controller.id, "vault_name": vault.name}
        )
