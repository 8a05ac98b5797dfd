"""One Azure region's API fleet: a Standard Load Balancer in front of a VM scale set.

What the incident taught, encoded here:

- The load-balancing rule's idle timeout is the budget's `lb_idle_timeout_s` (whole minutes, 4 minimum) with TCP
  reset on: a flow idle that long gets an RST at both ends instead of being dropped silently, so a client of a
  dead server learns it at once. (https://learn.microsoft.com/azure/load-balancer/load-balancer-tcp-reset)
- The probe is `/readyz`: a draining server (503) leaves rotation before its sockets are asked to reconnect.
- The terminate notification is on with `notBeforeTimeout` = the budget's platform notice (PT5M-PT15M), so a
  deleted instance waits for the drain (or the agent's StartRequests approval).
  (https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-terminate-notification)
- The application health extension reports `/readyz`; rolling upgrades surge new VMs (MaxSurge) before deleting
  old ones and wait for them to be ready. Overprovisioning is off: it deletes VMs nobody drained.
- The extension is version 1.0 (binary health from the status code): version 2.0 ("rich health states") wants a
  JSON body `{"ApplicationHealthState": "Healthy"}` and reports Unknown for anything else, and drainctl's `/readyz`
  answers plain text (`ready`, 503 while draining). Source: FACTS.md and
  https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-health-extension
- Rolling-upgrade percentages are derived from the capacity: one VM must fit in `maxUnhealthyInstancePercent`
  (a draining VM is unhealthy on `/readyz`), so at capacity 2 it is 50, not 20, and batches are one VM.
  (https://learn.microsoft.com/rest/api/compute/virtual-machine-scale-sets/create-or-update#rollingupgradepolicy)
- The scale set spans the region's pinned availability zones (`zones`), its frontend address is zone-redundant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import pulumi
import pulumi_azure_native as azure

from controller.core.budget import Budget
from infra.config import AppSettings, AzureImage, AzureRegion

FRONTEND, POOL, PROBE = "frontend", "api", "readyz"
PUBLIC_PORT = 443
HEALTH_EXTENSION_VERSION = "1.0"
"""ApplicationHealthLinux 1.0: healthy on 2xx, unhealthy otherwise; no body parsed (2.0 needs a JSON body)."""
MIN_UPGRADE_PERCENT = 20


class ApplicationHealthSettings(TypedDict):
    """The ApplicationHealthLinux extension's public settings (the SDK types `settings` as Any).
    Source: https://learn.microsoft.com/azure/virtual-machine-scale-sets/virtual-machine-scale-sets-health-extension"""

    protocol: Literal["http", "https", "tcp"]
    port: int
    requestPath: str
    intervalInSeconds: int
    numberOfProbes: int


def upgrade_percent(capacity: int) -> int:
    """The smallest percentage that is at least one VM of `capacity` (and never below 20, Azure's default)."""
    return min(100, max(MIN_UPGRADE_PERCENT, math.ceil(100 / capacity)))


@dataclass(frozen=True)
class AzureApiFleetArgs:
    region: AzureRegion
    budget: Budget
    app: AppSettings
    image: AzureImage
    admin_username: str
    ssh_public_key: str
    subscription_id: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]
    app_subnet_id: pulumi.Input[str]
    fleet_identity_id: pulumi.Input[str]
    custom_data: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()
    """What the VMs read at boot (artifacts, secret versions, the grants to read them): created first."""


def notice_iso8601(seconds: float) -> str:
    """`600` -> `PT10M` (config.py guarantees whole minutes)."""
    return f"PT{int(seconds // 60)}M"


class AzureApiFleet(pulumi.ComponentResource):
    public_ip: pulumi.Output[str]
    scale_set_name: pulumi.Output[str]
    """The scale set's name, as the controllers' `sources.azure.scale_sets` name it."""

    def __init__(self, name: str, args: AzureApiFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:azure:ApiFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        location = args.region.name
        address = azure.network.PublicIPAddress(
            f"{name}-ip",
            resource_group_name=args.resource_group_name,
            location=location,
            sku=azure.network.PublicIPAddressSkuArgs(name="Standard"),
            public_ip_allocation_method="Static",
            zones=list(args.region.zones),
            opts=child,
        )
        lb_name = f"drainctl-api-{location}"
        lb_id = pulumi.Output.all(args.subscription_id, args.resource_group_name).apply(
            lambda parts: (
                f"/subscriptions/{parts[0]}/resourceGroups/{parts[1]}/providers/Microsoft.Network/loadBalancers/{lb_name}"
            )
        )

        def ref(kind: str, item: str) -> azure.network.SubResourceArgs:
            return azure.network.SubResourceArgs(id=lb_id.apply(lambda base: f"{base}/{kind}/{item}"))

        idle_minutes = int(args.budget.lb_idle_timeout_s // 60)
        balancer = azure.network.LoadBalancer(
            f"{name}-lb",
            load_balancer_name=lb_name,
            resource_group_name=args.resource_group_name,
            location=location,
            sku=azure.network.LoadBalancerSkuArgs(name="Standard", tier="Regional"),
            frontend_ip_configurations=[
                azure.network.FrontendIPConfigurationArgs(
                    name=FRONTEND, public_ip_address=azure.network.PublicIPAddressArgs(id=address.id)
                )
            ],
            backend_address_pools=[azure.network.BackendAddressPoolArgs(name=POOL)],
            probes=[
                azure.network.ProbeArgs(
                    name=PROBE,
                    protocol="Http",
                    port=args.app.app_port,
                    request_path="/readyz",
                    # From the budget: the drain waits lb_deregistration_s for this probe to take a VM out.
                    interval_in_seconds=int(args.budget.lb_check_interval_s),
                    number_of_probes=args.budget.lb_unhealthy_threshold,
                    probe_threshold=args.budget.lb_unhealthy_threshold,
                )
            ],
            load_balancing_rules=[
                azure.network.LoadBalancingRuleArgs(
                    name="websockets",
                    protocol="Tcp",
                    frontend_port=PUBLIC_PORT,
                    # TLS terminates on the VM (HAProxy on tls_port, scripts.tls_terminator): the LB is L4.
                    backend_port=args.app.tls_port,
                    frontend_ip_configuration=ref("frontendIPConfigurations", FRONTEND),
                    backend_address_pool=ref("backendAddressPools", POOL),
                    probe=ref("probes", PROBE),
                    idle_timeout_in_minutes=idle_minutes,
                    enable_tcp_reset=True,
                    disable_outbound_snat=True,
                    load_distribution="Default",
                )
            ],
            outbound_rules=[
                azure.network.OutboundRuleArgs(
                    name="egress",
                    protocol="All",
                    frontend_ip_configurations=[ref("frontendIPConfigurations", FRONTEND)],
                    backend_address_pool=ref("backendAddressPools", POOL),
                    idle_timeout_in_minutes=idle_minutes,
                    enable_tcp_reset=True,
                )
            ],
            opts=child,
        )
        self.scale_set_name = self._scale_set(
            name, args, pool_id=lb_id.apply(lambda base: f"{base}/backendAddressPools/{POOL}"), after=balancer
        ).name
        self.public_ip = address.ip_address.apply(lambda ip: ip or "")
        self.register_outputs({"public_ip": self.public_ip, "load_balancer": balancer.id})

    def _scale_set(
        self, name: str, args: AzureApiFleetArgs, *, pool_id: pulumi.Output[str], after: pulumi.Resource
    ) -> azure.compute.VirtualMachineScaleSet:
        compute = azure.compute
        percent = upgrade_percent(args.region.capacity)
        health = ApplicationHealthSettings(
            protocol="http",
            port=args.app.app_port,
            requestPath="/readyz",
            intervalInSeconds=5,
            numberOfProbes=1,
        )
        return compute.VirtualMachineScaleSet(
            f"{name}-vmss",
            resource_group_name=args.resource_group_name,
            location=args.region.name,
            sku=compute.SkuArgs(name=args.region.vm_size, tier="Standard", capacity=args.region.capacity),
            orchestration_mode="Uniform",
            zones=list(args.region.zones),
            overprovision=False,
            identity=compute.VirtualMachineScaleSetIdentityArgs(
                type=compute.ResourceIdentityType.USER_ASSIGNED, user_assigned_identities=[args.fleet_identity_id]
            ),
            upgrade_policy=compute.UpgradePolicyArgs(
                mode=compute.UpgradeMode.ROLLING,
                rolling_upgrade_policy=compute.RollingUpgradePolicyArgs(
                    max_surge=True,
                    max_batch_instance_percent=percent,
                    max_unhealthy_instance_percent=percent,
                    max_unhealthy_upgraded_instance_percent=percent,
                    pause_time_between_batches="PT30S",
                ),
            ),
            virtual_machine_profile=compute.VirtualMachineScaleSetVMProfileArgs(
                os_profile=compute.VirtualMachineScaleSetOSProfileArgs(
                    computer_name_prefix="api",
                    admin_username=args.admin_username,
                    custom_data=args.custom_data,
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
                storage_profile=compute.VirtualMachineScaleSetStorageProfileArgs(
                    image_reference=compute.ImageReferenceArgs(
                        publisher=args.image.publisher,
                        offer=args.image.offer,
                        sku=args.image.sku,
                        version=args.image.version,
                    ),
                    os_disk=compute.VirtualMachineScaleSetOSDiskArgs(
                        create_option="FromImage",
                        caching=compute.CachingTypes.READ_WRITE,
                        managed_disk=compute.VirtualMachineScaleSetManagedDiskParametersArgs(
                            storage_account_type="Premium_LRS"
                        ),
                    ),
                ),
                network_profile=compute.VirtualMachineScaleSetNetworkProfileArgs(
                    network_interface_configurations=[
                        compute.VirtualMachineScaleSetNetworkConfigurationArgs(
                            name="nic",
                            primary=True,
                            ip_configurations=[
                                compute.VirtualMachineScaleSetIPConfigurationArgs(
                                    name="ipconfig",
                                    subnet=compute.ApiEntityReferenceArgs(id=args.app_subnet_id),
                                    load_balancer_backend_address_pools=[compute.SubResourceArgs(id=pool_id)],
                                )
                            ],
                        )
                    ]
                ),
                extension_profile=compute.VirtualMachineScaleSetExtensionProfileArgs(
                    extensions=[
                        compute.VirtualMachineScaleSetExtensionArgs(
                            name="health",
                            publisher="Microsoft.ManagedServices",
                            type="ApplicationHealthLinux",
                            type_handler_version=HEALTH_EXTENSION_VERSION,
                            auto_upgrade_minor_version=True,
                            settings=health,
                        )
                    ]
                ),
                scheduled_events_profile=compute.ScheduledEventsProfileArgs(
                    terminate_notification_profile=compute.TerminateNotificationProfileArgs(
                        enable=True, not_before_timeout=notice_iso8601(args.budget.platform_notice_s)
                    )
                ),
            ),
            tags={"drainctl-role": "api"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[after, *args.depends_on]),
        )
