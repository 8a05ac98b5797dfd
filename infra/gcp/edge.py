"""The GCP edge: one global external Application Load Balancer over every regional API fleet.

Timeout semantics on this LB type (https://cloud.google.com/load-balancing/docs/backend-service#timeout-setting):
the backend-service `timeoutSec` is not an idle timeout for WebSockets; it caps a WebSocket's whole lifetime
(default 30 s). It is set from `drainctl:gcp.websocket_lifetime_s` (86,400 s in production, as the incident's
fleet ran), which config.py requires to exceed every other timer. The target proxy's HTTP keep-alive timeout
does not apply to WebSockets. So on GCP the edge cannot cut a stale socket early; that layer comes from the
server's idle timeout and the clients' heartbeat timeout (DESIGN.md §1, layers 1, 2 and 4).

Connection draining (0-3600 s) equals the budget's platform notice: a backend being removed keeps its sockets
until the controller has drained and verified it, and no longer.

Cloud Armor throttles the socket paths per client IP in the shortest window Cloud Armor offers (10 s); above the
limit it answers 502 by default, because old clients treated 429 as fatal.
(https://cloud.google.com/armor/docs/rate-limiting-overview)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from controller.core.budget import Budget
from infra.config import RateLimit
from infra.gcp.fleet import NAMED_PORT

SOCKET_PATHS_EXPR = "request.path.startsWith('/socket')"
DEFAULT_RULE_PRIORITY = 2147483647


@dataclass(frozen=True)
class GcpHealthChecksArgs:
    app_port: int
    budget: Budget
    """The readiness check's interval, threshold and timeout (its deregistration time, DESIGN.md §3)."""


class GcpHealthChecks(pulumi.ComponentResource):
    """`/healthz` for autohealing (is the process alive), `/readyz` for the load balancer (503 while draining)."""

    liveness_id: pulumi.Output[str]
    readiness_id: pulumi.Output[str]

    def __init__(self, name: str, args: GcpHealthChecksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:HealthChecks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        liveness = gcp.compute.HealthCheck(
            f"{name}-healthz",
            check_interval_sec=15,
            timeout_sec=5,
            healthy_threshold=1,
            unhealthy_threshold=3,
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(port=args.app_port, request_path="/healthz"),
            opts=child,
        )
        readiness = gcp.compute.HealthCheck(
            f"{name}-readyz",
            check_interval_sec=int(args.budget.lb_check_interval_s),
            timeout_sec=int(args.budget.lb_check_timeout_s),
            healthy_threshold=2,
            unhealthy_threshold=args.budget.lb_unhealthy_threshold,
            http_health_check=gcp.compute.HealthCheckHttpHealthCheckArgs(port=args.app_port, request_path="/readyz"),
            opts=child,
        )
        self.liveness_id = liveness.id
        self.readiness_id = readiness.id
        self.register_outputs({"liveness_id": self.liveness_id, "readiness_id": self.readiness_id})


@dataclass(frozen=True)
class GcpEdgeArgs:
    domain: str
    budget: Budget
    websocket_lifetime_s: int
    rate_limit: RateLimit
    readiness_check_id: pulumi.Input[str]
    instance_groups: Sequence[pulumi.Input[str]]


class GcpEdge(pulumi.ComponentResource):
    address: pulumi.Output[str]
    backend_name: pulumi.Output[str]
    """The global backend service's name: the controllers observe its health of each instance (issue 15)."""

    def __init__(self, name: str, args: GcpEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("drainctl:gcp:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        address = gcp.compute.GlobalAddress(f"{name}-ip", opts=child)
        certificate = gcp.compute.ManagedSslCertificate(
            f"{name}-cert",
            managed=gcp.compute.ManagedSslCertificateManagedArgs(domains=[args.domain]),
            opts=child,
        )
        policy = gcp.compute.SecurityPolicy(f"{name}-armor", rules=_armor_rules(args.rate_limit), opts=child)
        backend = gcp.compute.BackendService(
            f"{name}-backend",
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTP",
            port_name=NAMED_PORT,
            timeout_sec=args.websocket_lifetime_s,
            connection_draining_timeout_sec=int(args.budget.platform_notice_s),
            health_checks=args.readiness_check_id,
            security_policy=policy.self_link,
            backends=[
                gcp.compute.BackendServiceBackendArgs(group=group, balancing_mode="UTILIZATION", capacity_scaler=1.0)
                for group in args.instance_groups
            ],
            opts=child,
        )
        url_map = gcp.compute.URLMap(f"{name}-urls", default_service=backend.id, opts=child)
        proxy = gcp.compute.TargetHttpsProxy(
            f"{name}-https", url_map=url_map.id, ssl_certificates=[certificate.id], opts=child
        )
        gcp.compute.GlobalForwardingRule(
            f"{name}-https",
            target=proxy.id,
            ip_address=address.address,
            ip_protocol="TCP",
            port_range="443",
            load_balancing_scheme="EXTERNAL_MANAGED",
            opts=child,
        )
        self.address = address.address
        self.backend_name = backend.name
        self.register_outputs({"address": self.address, "backend": backend.id, "backend_name": self.backend_name})


def _armor_rules(limit: RateLimit) -> list[gcp.compute.SecurityPolicyRuleArgs]:
    throttle = gcp.compute.SecurityPolicyRuleArgs(
        priority=1000,
        action="throttle",
        description="Throttle WebSocket connects per client IP (Cloud Armor's shortest window is 10 s).",
        match=gcp.compute.SecurityPolicyRuleMatchArgs(
            expr=gcp.compute.SecurityPolicyRuleMatchExprArgs(expression=SOCKET_PATHS_EXPR)
        ),
        rate_limit_options=gcp.compute.SecurityPolicyRuleRateLimitOptionsArgs(
            conform_action="allow",
            exceed_action=f"deny({limit.exceed_status})",
            enforce_on_key="IP",
            rate_limit_threshold=gcp.compute.SecurityPolicyRuleRateLimitOptionsRateLimitThresholdArgs(
                count=limit.count, interval_sec=limit.interval_s
            ),
        ),
    )
    default = gcp.compute.SecurityPolicyRuleArgs(
        priority=DEFAULT_RULE_PRIORITY,
        action="allow",
        description="Default rule.",
        match=gcp.compute.SecurityPolicyRuleMatchArgs(
            versioned_expr="SRC_IPS_V1",
            config=gcp.compute.SecurityPolicyRuleMatchConfigArgs(src_ip_ranges=["*"]),
        ),
    )
    return [throttle, default]
