"""Is the host at zero sockets? Prometheus and the host's kernel count, judged together.

The rule (DESIGN.md §4, docs/architecture.md): Prometheus is queried for the app's own open-socket gauge and
the agent for the kernel's count of established TCP sockets on the service port, at the same time.

- Prometheus unreachable, or its series stale (no fresh sample: Prometheus marks a series stale as soon as a
  scrape fails, e.g. a stopped app), -> the kernel count alone.
- Both answer and disagree -> the kernel count decides: the host is verified at zero only when the kernel
  count is zero. The app's gauge can miss half-open sockets; the kernel cannot.
- The agent cannot answer -> a fresh Prometheus sample decides.
So whenever the agent answers, the kernel count is the one that proves zero and that measures progress.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from controller.core.errors import DrainctlError
from controller.core.ports import HostActions, SocketGauge


@dataclass(frozen=True)
class Observation:
    """One look at a host: both counts (None when unknown) and why a count is unknown."""

    kernel: int | None
    prometheus: int | None
    kernel_error: str | None = None
    prometheus_error: str | None = None

    @property
    def count(self) -> int | None:
        """The count that measures progress: the kernel's when known, else Prometheus's."""
        return self.kernel if self.kernel is not None else self.prometheus

    @property
    def zero_by(self) -> str | None:
        """Which count proves the host is at zero sockets, or None if nothing does."""
        if self.kernel is not None:
            return "kernel" if self.kernel == 0 else None
        return "prometheus" if self.prometheus == 0 else None

    @property
    def disagreement(self) -> bool:
        return self.kernel is not None and self.prometheus is not None and self.kernel != self.prometheus

    def describe(self) -> str:
        kernel = self.kernel if self.kernel is not None else f"unknown ({self.kernel_error})"
        prometheus = self.prometheus if self.prometheus is not None else f"unknown ({self.prometheus_error})"
        return f"kernel {kernel}, prometheus {prometheus}"


class Verifier:
    """Counts one host's sockets both ways at once; never raises for an unreachable counter."""

    def __init__(self, gauge: SocketGauge | None) -> None:
        self._gauge = gauge

    async def observe(self, instance: str, host: HostActions) -> Observation:
        (kernel, kernel_error), (prometheus, prometheus_error) = await asyncio.gather(
            _kernel(host), self._prometheus(instance)
        )
        return Observation(kernel, prometheus, kernel_error, prometheus_error)

    async def _prometheus(self, instance: str) -> tuple[int | None, str | None]:
        if self._gauge is None:
            return None, "not configured"
        try:
            value = await self._gauge.open_sockets(instance)
        except DrainctlError as exc:
            return None, str(exc)
        return value, None if value is not None else "no fresh sample"


async def _kernel(host: HostActions) -> tuple[int | None, str | None]:
    try:
        return await host.connections(), None
    except DrainctlError as exc:
        return None, str(exc)
