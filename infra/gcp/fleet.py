"""One region's API fleet on GCP: subnet, NAT, instance template, regional MIG and autoscaler.

What the incident taught, encoded here:

- Graceful shutdown is on, with `maxDuration` = the budget's platform notice: a deleted instance stays in
  PENDING_STOP long enough for the controller (or the agent's fallback) to drain, verify and reset.
  (https://cloud.google.com/compute/docs/instances/graceful-shutdown-overview)
- The update policy surges new servers before removing old ones (PROACTIVE, REPLACE, max unavailable 0, max
  surge >= the number of zones, as regional MIGs require), so a rolling upgrade never shrinks the fleet.
- Autohealing uses `/healthz` (is the process alive), never `/readyz`, which is 503 while a server drains.
- The autoscaler scales in one server per 10 minutes at most, so scale-in never outruns the drain.
- No external IP: egress goes through Cloud NAT; only the load balancer reaches the app port.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from pulumi_gcp.compute import RegionAutoscalerAutoscalingPolicyScaleInControlMaxScaledInReplicasArgs as ScaleInMax

from controller.core.budget import Budget
from infra.config import AppSettings, GcpRegion

NAMED_PORT = "http"
ZONES_PER_REGION = 3
"""A regional MIG spreads over three zones; its fixed surge must be 0 or at least this."""


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


class GcpApiFleet(pulumi.ComponentResource):
    subnet_id: pulumi.Output[str]
    instance_group: pulumi.Output[str]

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
            opts=child,
        )
        surge = max(ZONES_PER_REGION, args.region.min_replicas)
        group = gcp.compute.RegionInstanceGroupManager(
            f"{name}-mig",
            region=region,
            base_instance_name="drainctl-api",
            versions=[gcp.compute.RegionInstanceGroupManagerVersionArgs(instance_template=template.self_link_unique)],
            named_ports=[gcp.compute.RegionInstanceGroupManagerNamedPortArgs(name=NAMED_PORT, port=args.app.app_port)],
            auto_healing_policies=gcp.compute.RegionInstanceGroupManagerAutoHealingPoliciesArgs(
                health_check=args.liveness_check_id, initial_delay_sec=300
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
                cooldown_period=120,
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
        self.register_outputs({"subnet_id": self.subnet_id, "instance_group": self.instance_group})
