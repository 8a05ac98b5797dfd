"""Leader election with a `coordination.k8s.io/v1` Lease: of several controller replicas, only one acts.

The algorithm is client-go's (`tools/leaderelection`), on the Lease's `holderIdentity`, `leaseDurationSeconds`,
`renewTime`, `acquireTime` and `leaseTransitions`, every write a PUT carrying the resourceVersion read (409 on a
race, which the loser simply loses):

- A candidate reads the Lease every `renew_s`. It takes the Lease when there is none (create), when it is
  released (no holder), or when the record has not changed for `lease_duration_s` *by the candidate's own
  monotonic clock* (so clock skew between replicas does not matter).
- The holder renews (`renewTime`) every `renew_s`. If it has not renewed successfully for `renew_deadline_s`
  (two thirds of the lease duration, like client-go's 10 s of 15 s), it stops acting at once: it must stop before
  any other replica can think the lease expired.
- On a clean stop the holder releases the Lease (no holder, duration 1 s) so a standby takes over at its next read.

`lead(work)` runs `work` only while leading; it is cancelled when leadership is lost, and started again if it
is won back. Only one replica's engine acts; a standby's engine is constructed (journal resumed) but idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from controller.core.errors import DrainctlError
from controller.platforms.kubernetes.api import Conflict, KubernetesApi, Lease, NotFound

log = logging.getLogger("drainctl.leader")

Work = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    lease_duration_s: float
    """Standbys take the lease when it has not been renewed for this long."""
    renew_s: float
    """How often the holder renews and a standby looks."""

    @property
    def renew_deadline_s(self) -> float:
        """The holder stops acting when its last successful renewal is this old."""
        return self.lease_duration_s * 2.0 / 3.0


class LeaseElector:
    def __init__(
        self,
        api: KubernetesApi,
        settings: LeaseSettings,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.settings = settings
        self._wall = wall_clock
        self._monotonic = monotonic
        self._observed: Lease | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None
        """Monotonic time of our last successful write while leading; None: not leading."""
        self.transitions = 0
        """How many times this elector became the leader."""

    @property
    def leading(self) -> bool:
        renewed = self._renewed_at
        return renewed is not None and self._monotonic() - renewed < self.settings.renew_deadline_s

    async def lead(self, work: Work) -> None:
        """Run `work` whenever this replica holds the lease, until cancelled; then release the lease."""
        try:
            while True:
                await self._until_leading()
                await self._lead_once(work)
        finally:
            if self._renewed_at is not None:
                await asyncio.shield(self._release())

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease; take it or renew it when we may. True when we hold it now."""
        settings = self.settings
        timeout_s = max(0.5, settings.renew_s)
        try:
            lease = await self._api.get_lease(settings.namespace, settings.name, timeout_s=timeout_s)
        except NotFound:
            return await self._write(self._fresh(None), create=True)
        self._observe(lease)
        if lease.holder not in (None, settings.identity) and not self._expired(lease):
            self._renewed_at = None
            return False
        return await self._write(self._fresh(lease), create=False)

    async def _until_leading(self) -> None:
        while True:
            try:
                if await self.try_acquire_or_renew():
                    self.transitions += 1
                    log.info("leader: %s now holds lease %s/%s", self.settings.identity, self.settings.namespace,
                             self.settings.name)
                    return
            except DrainctlError as exc:
                log.warning("leader: cannot read lease %s: %s", self.settings.name, exc)
            await asyncio.sleep(self.settings.renew_s)

    async def _lead_once(self, work: Work) -> None:
        task = asyncio.create_task(work(), name="leading")
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=min(self.settings.renew_s, self._time_left_s()))
                if not task.done() and not await self._renew():
                    log.error("leader: %s lost lease %s; stopping", self.settings.identity, self.settings.name)
                    return
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        task.result()  # work that failed fails the election loop too: the daemon should exit, not idle

    async def _renew(self) -> bool:
        """Renew, giving up when the renew deadline comes (a hanging API server must not keep us acting)."""
        try:
            async with asyncio.timeout(max(0.0, self._time_left_s())):
                if await self.try_acquire_or_renew():
                    return True
        except TimeoutError:
            log.warning("leader: renewing lease %s took past the renew deadline", self.settings.name)
        except DrainctlError as exc:
            log.warning("leader: renewing lease %s failed: %s", self.settings.name, exc)
        return self.leading

    def _time_left_s(self) -> float:
        """Until the renew deadline (0 when not leading)."""
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.settings.renew_deadline_s - self._monotonic())

    def _observe(self, lease: Lease) -> None:
        seen = self._observed
        if seen is None or (seen.holder, seen.renewed_at, seen.resource_version) != (
            lease.holder, lease.renewed_at, lease.resource_version
        ):
            self._observed, self._observed_at = lease, self._monotonic()

    def _expired(self, lease: Lease) -> bool:
        duration_s = lease.duration_s if lease.duration_s is not None else self.settings.lease_duration_s
        return self._monotonic() >= self._observed_at + duration_s

    def _fresh(self, current: Lease | None) -> Lease:
        settings, now = self.settings, self._wall()
        ours = current is not None and current.holder == settings.identity
        base = current or Lease(settings.name, settings.namespace, None, None, None, None)
        return dataclasses.replace(
            base,
            holder=settings.identity,
            duration_s=max(1, round(settings.lease_duration_s)),
            acquired_at=base.acquired_at if ours else now,
            renewed_at=now,
            transitions=base.transitions + (0 if ours or current is None else 1),
        )

    async def _write(self, lease: Lease, *, create: bool) -> bool:
        timeout_s = max(0.5, self.settings.renew_s)
        try:
            if create:
                written = await self._api.create_lease(lease, timeout_s=timeout_s)
            else:
                written = await self._api.replace_lease(lease, timeout_s=timeout_s)
        except Conflict:
            log.debug("leader: someone else wrote lease %s first", self.settings.name)
            return False
        self._observe(written)
        self._renewed_at = self._monotonic()
        return True

    async def _release(self) -> None:
        """Give the lease up (no holder, 1 s duration) so a standby need not wait for it to expire."""
        self._renewed_at = None
        try:
            lease = await self._api.get_lease(self.settings.namespace, self.settings.name, timeout_s=2.0)
            if lease.holder != self.settings.identity:
                return
            released = dataclasses.replace(lease, holder=None, duration_s=1, renewed_at=self._wall())
            await self._api.replace_lease(released, timeout_s=2.0)
            log.info("leader: %s released lease %s", self.settings.identity, self.settings.name)
        except DrainctlError as exc:
            log.warning("leader: could not release lease %s (it expires by itself): %s", self.settings.name, exc)
