"""The stack's artifact bucket on GCP: the wheelhouse (and the app server's archive) the VMs install from.

One bucket per stack, `<project>-drainctl-artifacts`, in the hub region: uniform bucket-level access (IAM only, no
object ACLs) and public access prevention enforced, so no grant can make it public. `roles/storage.objectViewer`
on the bucket goes to the fleet's and the controllers' service accounts only; the VMs read objects with their
own tokens (infra/scripts.py `gcp_object`). Objects are named by content (infra/artifacts.py), uploaded from the
files `make dist` wrote. Sources: pulumi_gcp `storage.Bucket` (`uniform_bucket_level_access`,
`public_access_prevention`), `storage.BucketObject` (`source`), `storage.BucketIAMMember`;
https://cloud.google.com/storage/docs/public-access-prevention.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.artifacts import Artifacts

READER_ROLE = "roles/storage.objectViewer"


def bucket_name(project: str) -> str:
    return f"{project}-drainctl-artifacts"


@dataclass(frozen=True)
class GcpArtifactStoreArgs:
    project: str
    location: str
    """The hub region (a regional bucket next to the controllers)."""
    artifacts: Artifacts
    readers: Mapping[str, pulumi.Input[str]]
    """Reader name (`fleet`, `controller`) -> service account email."""


class GcpArtifactStore(pulumi.ComponentResource):
    bucket: str
    artifacts: Artifacts
    uploads: list[pulumi.Resource]
    """The objects and the grants to read them: what a VM must not boot before."""

    def __init__(self, name: str, args: GcpArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        self.artifacts = args.artifacts
        super().__init__("drainctl:gcp:ArtifactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = bucket_name(args.project)
        bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=self.bucket,
            project=args.project,
            location=args.location.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            opts=child,
        )
        self.uploads = []
        for artifact in args.artifacts.all():
            self.uploads.append(
                gcp.storage.BucketObject(
                    f"{name}-{artifact.sha256[:16]}",
                    bucket=bucket.name,
                    name=artifact.object_name,
                    source=pulumi.FileAsset(str(artifact.path)),
                    content_type="application/gzip",
                    opts=child,
                )
            )
        for reader, email in args.readers.items():
            self.uploads.append(
                gcp.storage.BucketIAMMember(
                    f"{name}-{reader}",
                    bucket=bucket.name,
                    role=READER_ROLE,
                    member=pulumi.Output.from_input(email).apply(lambda value: f"serviceAccount:{value}"),
                    opts=child,
                )
            )
        self.register_outputs({"bucket": self.bucket})
