"""One region's API fleet on GCP: subnet, NAT, instance template, regional MIG and autoscaler.

What the incident taught, encoded here:

- Graceful shutdown is on, with `maxDuration` = the budget's platform notice: a deleted instance stays in
  PENDING_STOP long enough for the controller (or the agent's fallback) to drain, verify and reset.
  (https://cloud.google.com/compute/docs/instances/graceful-shutdown-overview)
- The update policy surges new servers before removing old ones (PROACTIVE, REPLACE, max unavailable 0), so a
  rolling upgrade never shrinks the fleet. A regional MIG's fixed `maxSurge` must be 0 or at least the number of
  zones it spreads over, so the zones are pinned (`distributionPolicyZones`) and the surge derived from them.
  (https://cloud.google.com/compute/docs/instance-groups/regional-mig-distribution-shape,
  https://cloud.google.com/compute/docs/instance-groups/rolling-out-updates-to-managed-instance-groups#max_surge)
- Graceful shutdown (`scheduling.gracefulShutdown`) is a Beta field in the provider (pulumi_gcp
  `InstanceTemplateSchedulingArgs.graceful_shutdown`: "Beta Settings for the instance to perform a graceful
  shutdown"): the hold does not rely on it alone. Backend connection draining (GA) holds the sockets for the
  same notice, and the agent's systemd stop (`drainctl agent hold`, TimeoutStopSec) holds the shutdown itself.
- Autohealing uses `/healthz` (is the process alive), never `/readyz`, which is 503 while a server drains.
- The autoscaler scales in one server per 10 minutes at most, so scale-in never outruns the drain; its cooldown
  (the time a new VM needs before its load counts) is the boot time, `BOOT_S`, the same as autohealing's delay.
  (https://cloud.google.com/compute/docs/autoscaler#cool_down_period)
- No external IP: egress goes through Cloud NAT; only the load balancer reaches the app port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from pulumi_gcp.compute import RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs as ScaleInMax

from controller.core.budget import Budget
from infra.config import AppSettings, GcpRegion

NAMED_PORT = "http"
BOOT_S = 300
"""Boot to ready: Debian image, venv, pip install, units started. Autohealing's initial delay and the autoscaler's
cooldown both wait this long (a cooldown shorter than boot makes the autoscaler read a half-booted VM's CPU)."""


def max_surge(zone_count: int, min_replicas: int) -> int:
    """A regional MIG's fixed surge: at least one new VM per zone (the API refuses 1..zones-1), and a whole
    fleet's worth when the fleet is larger, so an upgrade never removes a server before its successor serves."""
    return max(zone_count, min_replicas)


@dataclass(frozen=True)
class GcpApiFleetArgs:
    region: GcpRegion
    image: str
    budget: Budget
    app: AppSettings
    network_id: pulumi.Input[str]
    fleet_email: pulumi.Input[str]
    liveness_check_id: pulumi.Input[str]
    startup_script: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()
    """What the VMs read at boot (artifacts, secret versions, the grants to read them): created first."""


class GcpApiFleet(pulumi.ComponentResource):
    subnet_id: pulumi.Output[str]
    instance_group: pulumi.Output[str]
    group_name: pulumi.Output[str]
    """The regional MIG's name, as the controllers' `sources.gcp.groups` name it."""

    def __init__(self, name: str, args: GcpApiFleetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:ApiFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = args.region.name
        subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            region=region,
            network=args.network_id,
            ip_cidr_range=str(args.region.cidr),
            private_ip_google_access=True,
            opts=child,
        )
        router = gcp.compute.Router(f"{name}-router", region=region, network=args.network_id, opts=child)
        gcp.compute.RouterNat(
            f"{name}-nat",
            region=region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            opts=child,
        )
        template = gcp.compute.InstanceTemplate(
            f"{name}-template",
            name_prefix=f"drainctl-api-{region}-",
            region=region,
            machine_type=args.region.machine_type,
            disks=[gcp.compute.InstanceTemplateDiskArgs(source_image=args.image, boot=True, auto_delete=True)],
            network_interfaces=[gcp.compute.InstanceTemplateNetworkInterfaceArgs(subnetwork=subnet.id)],
            service_account=gcp.compute.InstanceTemplateServiceAccountArgs(
                email=args.fleet_email, scopes=["cloud-platform"]
            ),
            metadata_startup_script=args.startup_script,
            scheduling=gcp.compute.InstanceTemplateSchedulingArgs(
                graceful_shutdown=gcp.compute.InstanceTemplateSchedulingGracefulShutdownArgs(
                    enabled=True,
                    max_duration=gcp.compute.InstanceTemplateSchedulingGracefulShutdownMaxDurationArgs(
                        seconds=int(args.budget.platform_notice_s)
                    ),
                ),
            ),
            labels={"drainctl-role": "api"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        surge = max_surge(len(args.region.zones), args.region.min_replicas)
        group = gcp.compute.RegionInstanceGroupManager(
            f"{name}-mig",
            region=region,
            base_instance_name="drainctl-api",
            distribution_policy_zones=list(args.region.zone_names),
            versions=[gcp.compute.RegionInstanceGroupManagerVersionArgs(instance_template=template.self_link_unique)],
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(name=NAMED_PORT, port=args.app.app_port)],
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=args.liveness_check_id, initial_delay_sec=BOOT_S
            ),
            update_policy=gcp.compute.RegionInstanceGroupManagerUpdatePolicyArgs(
                type="PROACTIVE",
                minimal_action="REPLACE",
                replacement_method="SUBSTITUTE",
                max_surge_fixed=surge,
                max_unavailable_fixed=0,
            ),
            wait_for_instances=False,
            opts=child,
        )
        gcp.compute.RegionAutoscaler(
            f"{name}-autoscaler",
            region=region,
            target=group.id,
            autoscaling_policy=gcp.compute.RegionAutoscalerAutoscalingPolicyArgs(
                min_replicas=args.region.min_replicas,
                max_replicas=args.region.max_replicas,
                cooldown_period=BOOT_S,
                cpu_utilization=gcp.compute.RegionAutoscalerAutoscalingPolicyCpuUtilizationArgs(target=0.6),
                scale_in_control=gcp.compute.RegionAutoscalerAutoscalingPolicyScaleInControlArgs(
                    max_scaled_in_replicas=ScaleInMax(fixed=1),
                    time_window_sec=600,
                ),
            ),
            opts=child,
        )
        self.subnet_id = subnet.id
        self.instance_group = group.instance_group
        self.group_name = group.name
        self.register_outputs({"subnet_id": self.subnet_id, "instance_group": self.instance_group})
