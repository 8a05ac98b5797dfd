"""The timer budget: every timeout in drainctl derives from this one object.

The infra programs, the controller, the agent and the testbed (HAProxy's `timeout tunnel`) all read their
timers from a `Budget`, so a change to one timer is checked against every other before anything runs.
Pure Python on purpose: the Pulumi programs import it, and the daemon must not pull heavy dependencies.

Invariants (DESIGN.md §3), each refused with a message naming both timers, their values and the rule:

- heartbeat_timeout_s > heartbeat_interval_s        (a client must wait for at least one reply)
- server_idle_timeout_s > heartbeat_interval_s      (a live client is never cut by the server)
- lb_idle_timeout_s > heartbeat_interval_s          (a live client is never cut by the load balancer)
- expected_sockets_per_server / drain_rate_per_s <= drain_deadline_s   (a paced drain fits its deadline)
- drain_deadline_s + verify_s + margin_s < platform_notice_s           (drained and verified before deletion)
- no_progress_window_s < drain_deadline_s           (a stuck drain is forced before its deadline)
- lb_check_timeout_s <= lb_check_interval_s         (one check ends before the next: GCP and HAProxy rule)
- lb_deregistration_s + drain_deadline_s + verify_s + margin_s < platform_notice_s
                                                    (out of rotation first, then a drain that still fits)

`lb_deregistration_s` = lb_check_interval_s x lb_unhealthy_threshold + lb_check_timeout_s: the longest a load
balancer keeps routing new connections to a server after it turns not ready. Every health check the infra and
the testbed render (GCP readiness check, Azure probe, HAProxy `inter`/`fall`/`timeout check`) takes these
three numbers from here, so the drain's wait and the checks cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.errors import BudgetError


@dataclass(frozen=True)
class Budget:
    """Every timer of the system, in seconds, with the drain pace they imply."""

    heartbeat_interval_s: float = 10.0
    """Clients send a Phoenix heartbeat this often (Firezone clients: 10 s)."""
    heartbeat_timeout_s: float = 35.0
    """A client that hears no heartbeat reply for this long declares the socket dead (~3-4 intervals)."""
    server_idle_timeout_s: float = 37.0
    """The API server closes a socket that sent nothing for this long (Firezone: 37 s)."""
    lb_idle_timeout_s: float = 240.0
    """The load balancer cuts a flow idle this long (Azure Standard LB: 4 min minimum; HAProxy `timeout tunnel`)."""
    drain_deadline_s: float = 30.0
    """Graceful drain must finish within this; what is left is reset with TCP RSTs."""
    drain_rate_per_s: float = 500.0
    """Paced drain: disconnects per second, bounded so survivors' connect rate limits are not tripped."""
    expected_sockets_per_server: int = 10_000
    """The most sockets one server is planned to hold; sizes the drain-pace check."""
    verify_s: float = 10.0
    """Time allowed to verify (Prometheus and the host's kernel count) that a server reached zero sockets."""
    margin_s: float = 30.0
    """Safety margin between a verified drain and the platform's deadline."""
    platform_notice_s: float = 600.0
    """Platform notice: Azure terminate notification, GCP graceful-shutdown window, K8s grace period."""
    no_progress_window_s: float = 3.0
    """A drain whose socket count does not fall for this long is forced (reset) before the deadline."""
    lb_check_interval_s: float = 5.0
    """The load balancer checks each server's `/readyz` this often (GCP readiness check: 5 s)."""
    lb_unhealthy_threshold: int = 2
    """Consecutive failed checks that take a server out of rotation (GCP, Azure probe, HAProxy `fall`)."""
    lb_check_timeout_s: float = 5.0
    """A check unanswered this long failed (GCP `timeoutSec`, HAProxy `timeout check`); at most the interval."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not math.isfinite(value) or value <= 0:
                raise BudgetError(f"budget: {field.name} must be a positive number, got {value!r}")
        for problem in _broken_invariants(self):
            raise BudgetError(problem)

    @property
    def paced_drain_s(self) -> float:
        """How long a full server takes to drain at the paced rate."""
        return self.expected_sockets_per_server / self.drain_rate_per_s

    @property
    def lb_deregistration_s(self) -> float:
        """The longest a load balancer keeps routing new connections to a server after it turns not ready."""
        return self.lb_check_interval_s * self.lb_unhealthy_threshold + self.lb_check_timeout_s

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, where: str = "budget") -> Budget:
        """Parse a config mapping (YAML, Pulumi stack config); unknown keys and wrong types are refused."""
        if not isinstance(raw, Mapping):
            raise BudgetError(f"{where}: expected a mapping of timer names to numbers, got {type(raw).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise BudgetError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
            values[key] = _coerce(f"{where}.{key}", value, integer=known[key].type in (int, "int"))
        return cls(**values)

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def _coerce(name: str, value: Any, *, integer: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise BudgetError(f"{name}: expected a whole number, got {value!r}")
        return int(value)
    return float(value)


def _broken_invariants(b: Budget) -> list[str]:
    rules: list[tuple[bool, str]] = [
        (
            b.heartbeat_timeout_s > b.heartbeat_interval_s,
            f"heartbeat_timeout_s ({b.heartbeat_timeout_s:g}) must be greater than heartbeat_interval_s "
            f"({b.heartbeat_interval_s:g}): a client must wait for at least one heartbeat reply",
        ),
        (
            b.server_idle_timeout_s > b.heartbeat_interval_s,
            f"server_idle_timeout_s ({b.server_idle_timeout_s:g}) must be greater than heartbeat_interval_s "
            f"({b.heartbeat_interval_s:g}): the server would cut live clients",
        ),
        (
            b.lb_idle_timeout_s > b.heartbeat_interval_s,
            f"lb_idle_timeout_s ({b.lb_idle_timeout_s:g}) must be greater than heartbeat_interval_s "
            f"({b.heartbeat_interval_s:g}): the load balancer would cut live clients",
        ),
        (
            b.paced_drain_s <= b.drain_deadline_s,
            f"expected_sockets_per_server ({b.expected_sockets_per_server}) / drain_rate_per_s "
            f"({b.drain_rate_per_s:g}) = {b.paced_drain_s:g} s must be at most drain_deadline_s "
            f"({b.drain_deadline_s:g}): a paced drain would not fit its deadline",
        ),
        (
            b.drain_deadline_s + b.verify_s + b.margin_s < b.platform_notice_s,
            f"drain_deadline_s ({b.drain_deadline_s:g}) + verify_s ({b.verify_s:g}) + margin_s "
            f"({b.margin_s:g}) must be less than platform_notice_s ({b.platform_notice_s:g}): "
            "the platform would delete the server before the drain is verified",
        ),
        (
            b.no_progress_window_s < b.drain_deadline_s,
            f"no_progress_window_s ({b.no_progress_window_s:g}) must be less than drain_deadline_s "
            f"({b.drain_deadline_s:g}): a stuck drain must be forced before its deadline",
        ),
        (
            b.lb_check_timeout_s <= b.lb_check_interval_s,
            f"lb_check_timeout_s ({b.lb_check_timeout_s:g}) must be at most lb_check_interval_s "
            f"({b.lb_check_interval_s:g}): a health check must end before the next one starts",
        ),
        (
            b.lb_deregistration_s + b.drain_deadline_s + b.verify_s + b.margin_s < b.platform_notice_s,
            f"lb_deregistration_s ({b.lb_deregistration_s:g} = lb_check_interval_s x lb_unhealthy_threshold "
            f"+ lb_check_timeout_s) + drain_deadline_s ({b.drain_deadline_s:g}) + verify_s ({b.verify_s:g}) "
            f"+ margin_s ({b.margin_s:g}) must be less than platform_notice_s ({b.platform_notice_s:g}): "
            "out of rotation first, the drain would not fit before the platform deletes the server",
        ),
    ]
    return [message for holds, message in rules if not holds]
