"""The fleet harness: starts the testbed's servers, HAProxy, Prometheus and swarms, and stops all of them.

Used by the end-to-end tests, the demo and the controller's own end-to-end tests. Start with `Fleet`.
"""

from __future__ import annotations

from testbed.harness.fleet import Fleet
from testbed.harness.haproxy import HealthCheck, LoadBalancer
from testbed.harness.prometheus import Prometheus
from testbed.harness.servers import ServerProcess
from testbed.harness.supervising import Supervised
from testbed.harness.swarms import SwarmProcess

__all__ = ["Fleet", "HealthCheck", "LoadBalancer", "Prometheus", "ServerProcess", "Supervised", "SwarmProcess"]
