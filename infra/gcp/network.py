"""The stack's global VPC and its firewall: health checks reach the app port, only the controller reaches agents.

GCP VPCs are global; each region adds its subnet in `GcpApiFleet`. Firewall rules target the fleet's service
account, and the agent port is opened by identity (the controller's service account), not by address:

- allow   health-check ranges 35.191.0.0/16, 130.211.0.0/22 -> app port (priority 1000)
  (https://cloud.google.com/load-balancing/docs/health-check-concepts#ip-ranges)
- allow   controller service account -> agent port (priority 900)
- deny    0.0.0.0/0 -> agent port (priority 1000), so a broader allow added later cannot open it.
- allow   IAP TCP forwarding's range 35.235.240.0/20 -> the controllers' API port only (priority 1000): on-call's
  private path from a laptop (`gcloud compute start-iap-tunnel`, docs/runbook.md); the controllers have no
  external address. (https://cloud.google.com/iap/docs/using-tcp-forwarding#create-firewall-rule)

When the database is Cloud SQL, the VPC also gets private services access (a peering range), so instances have
private addresses only. The range is pinned (`drainctl:gcp.private_services_cidr`, config.py checks it overlaps
nothing): the VPN advertises it to Azure, and an auto-allocated range could collide with an Azure VNet.
(pulumi_gcp `compute.GlobalAddress` `address` + `prefix_length`; https://cloud.google.com/vpc/docs/configure-private-services-access#allocating-range)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import DEFAULT_API_PORT

HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")
IAP_TCP_RANGE = "35.235.240.0/20"
"""Where IAP TCP forwarding's connections come from (https://cloud.google.com/iap/docs/using-tcp-forwarding)."""


@dataclass(frozen=True)
class GcpNetworkArgs:
    app_port: int
    agent_port: int
    fleet_email: pulumi.Input[str]
    controller_email: pulumi.Input[str]
    private_services_cidr: ipaddress.IPv4Network | None
    """Reserve this peering range for Cloud SQL private IP (only when the database is on GCP)."""
    api_port: int = DEFAULT_API_PORT
    """The controllers' API port: the only port IAP's tunnels may reach, on the controllers only."""


class GcpNetwork(pulumi.ComponentResource):
    network_id: pulumi.Output[str]
    network_name: pulumi.Output[str]
    private_services_peering: pulumi.Output[str] | None
    """The private services connection's VPC peering name (to export VPN routes into it)."""
    private_services: pulumi.Resource | None
    """The service networking connection Cloud SQL must wait for, if any."""

    def __init__(self, name: str, args: GcpNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vpc = gcp.compute.Network(name, auto_create_subnetworks=False, routing_mode="GLOBAL", opts=child)
        fleet = [args.fleet_email]
        gcp.compute.Firewall(
            f"{name}-allow-health-checks",
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=list(HEALTH_CHECK_RANGES),
            target_service_accounts=fleet,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.app_port)])],
            description="Load balancer health checks and proxies reach the app port.",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-controller-to-agent",
            network=vpc.id,
            direction="INGRESS",
            priority=900,
            source_service_accounts=[args.controller_email],
            target_service_accounts=fleet,
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.agent_port)])],
            description="Only the controller's identity reaches the node agent.",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-deny-agent-port",
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=["0.0.0.0/0"],
            target_service_accounts=fleet,
            denies=[gcp.compute.FirewallDenyArgs(protocol="tcp", ports=[str(args.agent_port)])],
            description="Everything but the controller is refused at the agent port.",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-fleet-push-to-api",
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_service_accounts=fleet,
            target_service_accounts=[args.controller_email],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.api_port)])],
            description="The node agents push their notices to the controllers' API (POST /v1/pushes, push token).",
            opts=child,
        )
        gcp.compute.Firewall(
            f"{name}-allow-iap-to-api",
            network=vpc.id,
            direction="INGRESS",
            priority=1000,
            source_ranges=[IAP_TCP_RANGE],
            target_service_accounts=[args.controller_email],
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=[str(args.api_port)])],
            description="On-call reaches the controllers' API through IAP TCP forwarding, nothing else.",
            opts=child,
        )
        self.private_services = None
        self.private_services_peering = None
        if args.private_services_cidr is not None:
            peering_range = gcp.compute.GlobalAddress(
                f"{name}-private-services",
                network=vpc.id,
                purpose="VPC_PEERING",
                address_type="INTERNAL",
                address=str(args.private_services_cidr.network_address),
                prefix_length=args.private_services_cidr.prefixlen,
                opts=child,
            )
            connection = self.private_services = gcp.servicenetworking.Connection(
                f"{name}-private-services",
                network=vpc.id,
                service="servicenetworking.googleapis.com",
                reserved_peering_ranges=[peering_range.name],
                opts=child,
            )
            self.private_services_peering = connection.peering
        self.network_id = vpc.id
        self.network_name = vpc.name
        self.register_outputs({"network_id": self.network_id})
