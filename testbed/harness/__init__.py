"""The fleet harness: starts the testbed's servers, HAProxy, Prometheus, swarms, node agents and the
controller, plays the platform that deletes servers, and stops all of them.

Used by the end-to-end tests, the demo and the controller's own end-to-end tests. Start with `Fleet`.
"""

from __future__ import annotations

from testbed.harness.agents import AgentProcess
from testbed.harness.controllers import ControllerProcess
from testbed.harness.fleet import Fleet
from testbed.harness.haproxy import HealthCheck, LoadBalancer
from testbed.harness.platform import Platform, Retirement
from testbed.harness.prometheus import Prometheus
from testbed.harness.servers import ServerProcess
from testbed.harness.supervising import Supervised
from testbed.harness.swarms import SwarmProcess

__all__ = [
    "AgentProcess",
    "ControllerProcess",
    "Fleet",
    "HealthCheck",
    "LoadBalancer",
    "Platform",
    "Prometheus",
    "Retirement",
    "ServerProcess",
    "Supervised",
    "SwarmProcess",
]
