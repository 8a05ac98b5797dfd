"""The controller's footprint on GCP: two VMs (active and standby) running `drainctl run` under systemd.

Both run the same unit; the journal's leader lock (Postgres advisory lock) makes one active and the other a hot
standby. They sit in two zones of one region, carry the controller's service account (the identity the firewall
opens the agent port to) and have no external address.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

ROLES = ("active", "standby")
ZONE_SUFFIXES = ("b", "c")
"""Zones -b and -c exist in every region the proximity table lists (not every region has -a)."""


@dataclass(frozen=True)
class GcpControllerPairArgs:
    region: str
    machine_type: str
    image: str
    subnet_id: pulumi.Input[str]
    controller_email: pulumi.Input[str]
    startup_script: pulumi.Input[str]


class GcpControllerPair(pulumi.ComponentResource):
    addresses: list[pulumi.Output[str]]

    def __init__(self, name: str, args: GcpControllerPairArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:ControllerPair", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.addresses = []
        for role, zone in zip(ROLES, ZONE_SUFFIXES, strict=True):
            instance = gcp.compute.Instance(
                f"{name}-{role}",
                zone=f"{args.region}-{zone}",
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
                opts=child,
            )
            self.addresses.append(instance.network_interfaces.apply(lambda nics: nics[0].network_ip or ""))
        self.register_outputs({"addresses": self.addresses})
