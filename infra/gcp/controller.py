"""The controller's footprint on GCP: two VMs (active and standby) running `drainctl run` under systemd.

Both run the same unit; the Postgres leader lease (a row in the shared journal, docs/ha.md) makes one active and the
other a hot standby. They sit in two zones of one region, carry the controller's service account (the identity the
firewall opens the agent port to) and have no external address. Their private addresses are static, reserved by the
program (`gcp.compute.Address`, INTERNAL, in the hub subnet): the agents' controller.yaml push URLs and the
on-call path name them, so they must survive a VM's replacement.
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
    addresses: Sequence[str]
    """Static private address of each role (infra/rendered.py)."""
    startup_scripts: Sequence[pulumi.Input[str]]
    """Each role's boot script (its controller.yaml names its own address)."""
    depends_on: Sequence[pulumi.Resource] = ()
    """What the VMs read at boot (artifacts, secret versions, the grants to read them): created first."""


class GcpControllerPair(pulumi.ComponentResource):
    addresses: list[pulumi.Output[str]]

    def __init__(self, name: str, args: GcpControllerPairArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:ControllerPair", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.addresses = []
        for index, role in enumerate(ROLES):
            address = gcp.compute.Address(
                f"{name}-{role}-address",
                region=args.region,
                subnetwork=args.subnet_id,
                address_type="INTERNAL",
                address=args.addresses[index],
                opts=child,
            )
            instance = gcp.compute.Instance(
                f"{name}-{role}",
                zone=args.zones[index % len(args.zones)],
                machine_type=args.machine_type,
                boot_disk=gcp.compute.InstanceBootDiskArgs(
                    initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(image=args.image)
                ),
                network_interfaces=[
                    gcp.compute.InstanceNetworkInterfaceArgs(subnetwork=args.subnet_id, network_ip=address.address)
                ],
                service_account=gcp.compute.InstanceServiceAccountArgs(
                    email=args.controller_email, scopes=["cloud-platform"]
                ),
                metadata_startup_script=args.startup_scripts[index],
                allow_stopping_for_update=True,
                labels={"drainctl-role": f"controller-{role}"},
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=list(args.depends_on))),
            )
            self.addresses.append(pulumi.Output.all(address.address, instance.id).apply(lambda parts: str(parts[0])))
        self.register_outputs({"addresses": self.addresses})
