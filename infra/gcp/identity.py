"""Least-privilege identities on GCP: the API fleet's service account and the controller's.

The controller only reads the fleet and its load balancer: it polls the managed instance groups for instances
being deleted, recreated or stopped and reads their `shutdownDetails`; releasing an instance is the agent's
shutdown hook returning, not an API call. Its custom role therefore lists exactly these read permissions
(https://cloud.google.com/compute/docs/access/iam-permissions):

- `compute.instanceGroupManagers.list`: find the fleet's regional MIGs.
- `compute.instanceGroupManagers.get`: `regionInstanceGroupManagers.listManagedInstances` (`currentAction`).
- `compute.instances.get`: an instance's status and `shutdownDetails` during graceful shutdown.
- `compute.instances.list`: map instance names to the private addresses of their agents.
- `compute.backendServices.get`: `backendServices.getHealth`, the edge's backend service's health of each
  instance, which ends the drain's out-of-rotation step (the only permission that call needs).

Secrets live in Secret Manager; each identity may read only the secrets its VMs fetch at boot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

CONTROLLER_PERMISSIONS = (
    "compute.backendServices.get",
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.list",
    "compute.instances.get",
    "compute.instances.list",
)
FLEET_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
FLEET_SECRETS = ("agent-token", "app-admin-token", "db-password", "push-token")
CONTROLLER_SECRETS = ("agent-token", "db-password", "api-token", "push-token")


@dataclass(frozen=True)
class GcpIdentityArgs:
    project: str
    secrets: Mapping[str, pulumi.Output[str]]
    """Secret name -> generated value (see infra/secrets.py)."""


class GcpIdentity(pulumi.ComponentResource):
    fleet_email: pulumi.Output[str]
    controller_email: pulumi.Output[str]
    secret_ids: dict[str, pulumi.Output[str]]
    """Secret name -> Secret Manager secret id, for the boot scripts."""
    reads: dict[str, list[pulumi.Resource]]
    """Reader (`fleet`, `controller`) -> the secret versions and grants its VMs read at boot (they depend on them)."""

    def __init__(self, name: str, args: GcpIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:Identity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        fleet = gcp.serviceaccount.Account(
            f"{name}-fleet", account_id="drainctl-api", display_name="drainctl API servers", opts=child
        )
        controller = gcp.serviceaccount.Account(
            f"{name}-controller", account_id="drainctl-controller", display_name="drainctl controller", opts=child
        )
        role = gcp.projects.IAMCustomRole(
            f"{name}-controller-role",
            project=args.project,
            role_id="drainctlController",
            title="drainctl controller",
            description="Read the API fleet's managed instance groups, instances and backend health; nothing else.",
            permissions=list(CONTROLLER_PERMISSIONS),
            stage="GA",
            opts=child,
        )
        gcp.projects.IAMMember(
            f"{name}-controller-role-member",
            project=args.project,
            role=role.name,
            member=controller.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=child,
        )
        for fleet_role in FLEET_ROLES:
            gcp.projects.IAMMember(
                f"{name}-fleet-{fleet_role.rpartition('/')[2]}",
                project=args.project,
                role=fleet_role,
                member=fleet.email.apply(lambda email: f"serviceAccount:{email}"),
                opts=child,
            )
        self.secret_ids = {}
        self.reads = {"fleet": [], "controller": []}
        for secret_name, value in args.secrets.items():
            secret = gcp.secretmanager.Secret(
                f"{name}-{secret_name}",
                project=args.project,
                secret_id=f"drainctl-{secret_name}",
                replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
                opts=child,
            )
            version = gcp.secretmanager.SecretVersion(
                f"{name}-{secret_name}-v", secret=secret.id, secret_data=value, opts=child
            )
            readers = [("fleet", fleet)] if secret_name in FLEET_SECRETS else []
            readers += [("controller", controller)] if secret_name in CONTROLLER_SECRETS else []
            for reader, account in readers:
                self.reads[reader] += [version, gcp.secretmanager.SecretIamMember(
                    f"{name}-{secret_name}-{reader}",
                    project=args.project,
                    secret_id=secret.secret_id,
                    role="roles/secretmanager.secretAccessor",
                    member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                    opts=child,
                )]
            self.secret_ids[secret_name] = secret.secret_id
        self.fleet_email = fleet.email
        self.controller_email = controller.email
        self.register_outputs(
            {"fleet_email": self.fleet_email, "controller_email": self.controller_email, "controller_role": role.name}
        )
