"""The stack's artifact container on Azure: the wheelhouse (and the app server's archive) the VMs install from.

A storage account in the hub's resource group (name from the stack plus a random suffix: globally unique, at most
24 lowercase letters and digits) with anonymous blob access off, HTTPS only and TLS 1.2 at least; one private
container `artifacts`; one blob per artifact, named by content (infra/artifacts.py). "Storage Blob Data Reader"
on the container goes to the fleet's and the controllers' identities only; the VMs read with their own Entra
tokens (infra/scripts.py `azure_blob`). Sources: pulumi_azure_native `storage.StorageAccount`
(`allow_blob_public_access`, `enable_https_traffic_only`, `minimum_tls_version`), `storage.BlobContainer`,
`storage.Blob` (`source`), `authorization.RoleAssignment`; the role id from
https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

from infra.artifacts import Artifacts

CONTAINER = "artifacts"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
"""Built-in role "Storage Blob Data Reader": read blobs and list containers, nothing else."""
ACCOUNT_NAME_MAX = 24
_SUFFIX = 6


def account_name(stack: str, suffix: str) -> str:
    """`dctl` + the stack's letters and digits + the random suffix, at most 24 characters."""
    stem = re.sub(r"[^a-z0-9]", "", stack.lower())[: ACCOUNT_NAME_MAX - 4 - _SUFFIX]
    return f"dctl{stem}{suffix}"


@dataclass(frozen=True)
class AzureArtifactStoreArgs:
    stack: str
    location: str
    resource_group_name: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    artifacts: Artifacts
    readers: Mapping[str, pulumi.Input[str]]
    """Reader name (`fleet`, `controller`) -> the identity's principal id."""


class AzureArtifactStore(pulumi.ComponentResource):
    account_name: pulumi.Output[str]
    container: str
    artifacts: Artifacts
    uploads: list[pulumi.Resource]
    """The blobs and the grants to read them: what a VM must not boot before."""

    def __init__(self, name: str, args: AzureArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self.artifacts = args.artifacts
        super().__init__("drainctl:azure:ArtifactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        suffix = random.RandomString(f"{name}-suffix", length=_SUFFIX, special=False, upper=False, opts=child)
        account = azure.storage.StorageAccount(
            f"{name}-account",
            account_name=suffix.result.apply(lambda tail: account_name(args.stack, tail)),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=azure.storage.Kind.STORAGE_V2,
            sku=azure.storage.SkuArgs(name=azure.storage.SkuName.STANDARD_ZRS),
            allow_blob_public_access=False,
            enable_https_traffic_only=True,
            minimum_tls_version=azure.storage.MinimumTlsVersion.TLS1_2,
            opts=child,
        )
        container = azure.storage.BlobContainer(
            f"{name}-container",
            account_name=account.name,
            resource_group_name=args.resource_group_name,
            container_name=CONTAINER,
            public_access=azure.storage.PublicAccess.NONE,
            opts=child,
        )
        self.uploads = [
            azure.storage.Blob(
                f"{name}-{artifact.sha256[:16]}",
                account_name=account.name,
                resource_group_name=args.resource_group_name,
                container_name=container.name,
                blob_name=artifact.object_name,
                source=pulumi.FileAsset(str(artifact.path)),
                type=azure.storage.BlobType.BLOCK,
                content_type="application/gzip",
                opts=child,
            )
            for artifact in args.artifacts.all()
        ]
        role = pulumi.Output.from_input(args.subscription_id).apply(
            lambda sub: f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
            f"{STORAGE_BLOB_DATA_READER}"
        )
        for reader, principal_id in args.readers.items():
            self.uploads.append(
                azure.authorization.RoleAssignment(
                    f"{name}-{reader}",
                    scope=container.id,
                    role_definition_id=role,
                    principal_id=principal_id,
                    principal_type="ServicePrincipal",
                    opts=child,
                )
            )
        self.account_name = account.name
        self.container = CONTAINER
        self.register_outputs({"account_name": account.name, "container": CONTAINER})
