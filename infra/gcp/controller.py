"""The controller's footprint on GCP: two VMs (active and standby) running `drainctl run` under systemd.

Both run the same unit; the journal's leader lock (Postgres advisory lock) makes one active and the other a hot
standby. They sit in two zones of one region, carry the controller's service account (the identity the firewall
opens the agent port to) and have no external address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

ROLES = ("active", "standby")


@dataclass(frozen=True)
class GcpControllerPairArgs:
    region: str
    zones: Sequence[str]
    """The region's pinned zones (full names); the active VM goes to the first, the standby to the second."""
    machine_type: str
    image: str
    subnet_id: pulumi.Input[str]
    controller_email: pulumi.Input[str]
    startup_script: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()
    """What the VMs read at boot (artifacts, secret versions, the grants to read them): created first."""


class GcpControllerPair(pulumi.ComponentResource):
    addresses: list[pulumi.Output[str]]

    def __init__(self, name: str, args: GcpControllerPairArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:ControllerPair", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.addresses = []
        for index, role in enumerate(ROLES):
            instance = gcp.compute.Instance(
                f"{name}-{role}",
                zone=args.zones[index % len(args.zones)],
                machine_type=args.machine_type,
                boot_disk=gcp.compute.InstanceBootDiskArgs(
                    initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(image=args.image)
                ),
                network_interfaces=[gcp.compute.InstanceNetworkInterfaceArgs(subnetwork=args.subnet_id)],
                service_account=gcp.compute.InstanceServiceAccountArgs(
                    email=args.controller_email, scopes=["cloud-platform"]
                ),
                metadata_startup_script=args.startup_script,
                allow_stopping_for_update=True,
                labels={"drainctl-role": f"controller-{role}"},
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.depends_on))),
            )
            self.addresses.append(instance.network_interfaces.apply(lambda nics: nics[0].network_ip or ""))
        self.register_outputs({"addresses": self.addresses})
