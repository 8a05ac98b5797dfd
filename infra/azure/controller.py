"""The controller's footprint on Azure: two VMs (active and standby) running `drainctl run` under systemd.

They sit in the hub region's controller subnet (the only source every region's NSG lets reach the agent port),
in two availability zones, with the controller's user-assigned identity, no public address and a static private
address the program picks (the agents' push URLs and the on-call path name it). Both run the same unit; the
Postgres leader lease in the shared journal makes one active and the other a hot standby.

The boot script is in `userData` (mutable), not `osProfile.customData` (immutable after creation: ARM 409
PropertyChangeNotAllowed; FACTS.md, https://learn.microsoft.com/azure/virtual-machines/user-data). customData is
a constant stub that runs the current userData at every boot, so a change updates in place and applies at the
next restart (restart the standby first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure

from infra import scripts
from infra.config import AzureImage

ROLES = ("active", "standby")


@dataclass(frozen=True)
class AzureControllerPairArgs:
    location: str
    vm_size: str
    image: AzureImage
    admin_username: str
    ssh_public_key: str
    resource_group_name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    identity_id: pulumi.Input[str]
    addresses: Sequence[str]
    """Static private address of each role in the controller subnet (infra/rendered.py)."""
    user_data: Sequence[pulumi.Input[str]]
    """Each role's rendered boot script, base64 (mutable); customData is the constant `scripts.vm_bootstrap()`."""
    zones: Sequence[str] = ("1", "2")
    depends_on: Sequence[pulumi.Resource] = ()
    """What the VMs read at boot (artifacts, secret versions, the grants to read them): created first."""


class AzureControllerPair(pulumi.ComponentResource):
    addresses: list[pulumi.Output[str]]

    def __init__(self, name: str, args: AzureControllerPairArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:ControllerPair", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        compute = azure.compute
        self.addresses = []
        for index, role in enumerate(ROLES):
            zone = args.zones[index % len(args.zones)]
            nic = azure.network.NetworkInterface(
                f"{name}-{role}-nic",
                resource_group_name=args.resource_group_name,
                location=args.location,
                ip_configurations=[
                    azure.network.NetworkInterfaceIPConfigurationArgs(
                        name="ipconfig",
                        subnet=azure.network.SubnetArgs(id=args.subnet_id),
                        private_ip_allocation_method="Static",
                        private_ip_address=args.addresses[index],
                    )
                ],
                opts=child,
            )
            compute.VirtualMachine(
                f"{name}-{role}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                zones=[zone],
                hardware_profile=compute.HardwareProfileArgs(vm_size=args.vm_size),
                identity=compute.VirtualMachineIdentityArgs(
                    type=compute.ResourceIdentityType.USER_ASSIGNED, user_assigned_identities=[args.identity_id]
                ),
                os_profile=compute.OSProfileArgs(
                    computer_name=f"drainctl-controller-{role}",
                    admin_username=args.admin_username,
                    custom_data=scripts.vm_bootstrap(),
                    linux_configuration=compute.LinuxConfigurationArgs(
                        disable_password_authentication=True,
                        ssh=compute.SshConfigurationArgs(
                            public_keys=[
                                compute.SshPublicKeyArgs(
                                    path=f"/home/{args.admin_username}/.ssh/authorized_keys",
                                    key_data=args.ssh_public_key,
                                )
                            ]
                        ),
                    ),
                ),
                storage_profile=compute.StorageProfileArgs(
                    image_reference=compute.ImageReferenceArgs(
                        publisher=args.image.publisher,
                        offer=args.image.offer,
                        sku=args.image.sku,
                        version=args.image.version,
                    ),
                    os_disk=compute.OSDiskArgs(
                        create_option="FromImage",
                        managed_disk=compute.ManagedDiskParametersArgs(storage_account_type="Premium_LRS"),
                    ),
                ),
                network_profile=compute.NetworkProfileArgs(
                    network_interfaces=[compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True)]
                ),
                user_data=args.user_data[index],
                tags={"drainctl-role": f"controller-{role}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            )
            self.addresses.append(pulumi.Output.all(nic.id, args.addresses[index]).apply(lambda parts: str(parts[1])))
        self.register_outputs({"addresses": self.addresses})
