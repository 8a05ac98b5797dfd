"""Leader election on a lease row in the shared journal's database, with its epoch as a fencing token.

The row (`drainctl_lease`: name, holder, epoch, expires_at, advertise_url) is written by one statement that
takes or renews it, so two candidates cannot both win; `expires_at` is `now() + lease` by the database's
clock, never a replica's:

- A candidate tries every `renew_s`: it takes the row when there is none, when it has no holder (released),
  or when it has expired; taking it adds 1 to the epoch (a new term).
- The holder renews every `renew_s`, naming its epoch; a renewal that finds another epoch fails.
- The holder stops acting when its last successful renewal *began* `renew_deadline_s` (two thirds of the
  lease) ago by its own monotonic clock: the row expires no earlier than `lease_s` after that began, so it
  stops before a standby may take over (what client-go's elector does with its renew deadline).
- Every journal write carries the epoch (`controller/core/fencing.py`); the database refuses a write of an old
  epoch, and a refusal makes the holder step down at once (`JournalFenced`), even if it has not noticed yet.
- On a clean stop the holder releases the row (no holder, expired now) so a standby takes over at its next try.

Why not a session advisory lock (`pg_advisory_lock`): the lock belongs to a connection, and a half-open one
(the leader cut off, no RST) keeps it until the server's TCP keepalive gives up, minutes by default, while the
leader may still act; and nothing fences the writes of a leader that lost it without noticing. The lease row
expires by the database's clock whatever happens to the holder's connection, and its epoch fences the rest.

`lead(work)` runs `work` only while leading; it is cancelled when leadership is lost and started again when it
is won back (the engine reloads every unfinished episode from the journal when it starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from controller.core.errors import TemporaryError
from controller.core.fencing import Fence
from controller.core.ports import Work
from controller.platforms.postgres.config import PostgresLeaderConfig

log = logging.getLogger("drainctl.leader")

_TAKE_OR_RENEW = """
INSERT INTO drainctl_lease AS lease (name, holder, epoch, expires_at, advertise_url)
VALUES (%(name)s, %(holder)s, 1, now() + make_interval(secs => %(lease_s)s), %(url)s)
ON CONFLICT (name) DO UPDATE SET
    holder = EXCLUDED.holder,
    epoch = CASE WHEN lease.epoch = %(epoch)s AND lease.holder = EXCLUDED.holder
                 THEN lease.epoch ELSE lease.epoch + 1 END,
    expires_at = EXCLUDED.expires_at,
    advertise_url = EXCLUDED.advertise_url
WHERE (lease.epoch = %(epoch)s AND lease.holder = EXCLUDED.holder)
   OR lease.holder IS NULL OR lease.expires_at <= now()
RETURNING epoch
"""
"""Renew our term (`epoch` given and still the row's), or take the row when free or expired (epoch + 1)."""

_RELEASE = (
    "UPDATE drainctl_lease SET holder = NULL, expires_at = now() "
    "WHERE name = %(name)s AND holder = %(holder)s AND epoch = %(epoch)s"
)
_READ = "SELECT holder, epoch, advertise_url, expires_at > now() AS live FROM drainctl_lease WHERE name = %s"


class PostgresElector:
    """A `LeaderElector` on the lease row named `settings.name`, fencing the journal through `fence`."""

    def __init__(
        self,
        url: str,
        connection: dict[str, Any],
        fence: Fence,
        settings: PostgresLeaderConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url, self._connection_settings = url, connection
        self.fence = fence
        self.settings = settings
        self._monotonic = monotonic
        self._db: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._renewed_at: float | None = None
        """Monotonic time our last successful take or renewal began; None: not leading."""
        self._fenced = asyncio.Event()
        fence.on_refused(self._step_down)
        self.leader_url: str | None = None
        """The current holder's advertised API, as last read (None: unknown, or no holder)."""
        self.transitions = 0
        """How many times this controller became the leader."""

    @property
    def epoch(self) -> int | None:
        """The epoch this controller holds (None: not leading)."""
        return self.fence.epoch

    @property
    def leading(self) -> bool:
        renewed = self._renewed_at
        return (renewed is not None and self.fence.epoch is not None
                and self._monotonic() - renewed < self.settings.renew_deadline_s)

    async def lead(self, work: Work) -> None:
        """Run `work` whenever this controller holds the lease, until cancelled; then release the lease."""
        try:
            while True:
                await self._until_leading()
                await self._lead_once(work)
        finally:
            if self.fence.epoch is not None:
                await asyncio.shield(self._release())

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def try_acquire_or_renew(self) -> bool:
        """One round: take or renew the row. True when we hold it now (and since the round began)."""
        began = self._monotonic()
        params = {"name": self.settings.name, "holder": self.settings.holder, "lease_s": self.settings.lease_s,
                  "url": self.settings.advertise_url, "epoch": self.fence.epoch}
        db = await self._connection()
        row = await (await db.execute(_TAKE_OR_RENEW, params)).fetchone()
        if row is None:
            await self._read_holder(db)
            return False
        if self.fence.epoch is not None and row["epoch"] != self.fence.epoch:
            self._step_down()  # cannot happen by the statement's WHERE; never carry on under a new epoch
            return False
        self.fence.epoch, self._renewed_at = int(row["epoch"]), began
        self.leader_url = self.settings.advertise_url
        return True

    async def _until_leading(self) -> None:
        while True:
            if await self._attempt("take"):
                self.transitions += 1
                self._fenced.clear()
                log.info("leader: %s holds lease %s with epoch %d", self.settings.holder, self.settings.name,
                         self.fence.epoch)
                return
            await asyncio.sleep(self.settings.renew_s)

    async def _lead_once(self, work: Work) -> None:
        task = asyncio.create_task(work(), name="leading")
        fenced = asyncio.create_task(self._fenced.wait(), name="fenced")
        try:
            while not task.done():
                timeout_s = min(self.settings.renew_s, self._time_left_s())
                await asyncio.wait({task, fenced}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    break
                if fenced.done() or not await self._renew():
                    log.error("leader: %s lost lease %s (epoch %s); stopping", self.settings.holder,
                              self.settings.name, self.fence.epoch)
                    self._step_down()
                    return
        finally:
            fenced.cancel()
            await _cancel(task)
        if task.done() and not task.cancelled() and isinstance(task.exception(), TemporaryError):
            log.error("leader: %s stops leading after a temporary failure: %s", self.settings.holder,
                      task.exception())
            await self._release()  # the journal may be back soon; this controller or the other takes over
            return
        task.result()  # work that failed otherwise fails the election loop too: the daemon should exit

    async def _renew(self) -> bool:
        """Renew, giving up at the renew deadline (a hanging database must not keep us acting)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, self._time_left_s())):
                if await self._attempt("renew"):
                    return True
        return self.leading

    async def _attempt(self, what: str) -> bool:
        try:
            async with asyncio.timeout(max(0.5, self.settings.renew_s)):
                return await self.try_acquire_or_renew()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("leader: cannot %s lease %s: %s", what, self.settings.name, _first_line(exc))
            await self._drop_connection()
            return False

    def _step_down(self) -> None:
        self.fence.epoch, self._renewed_at = None, None
        self._fenced.set()

    def _time_left_s(self) -> float:
        """Until the renew deadline (0 when not leading)."""
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.settings.renew_deadline_s - self._monotonic())

    async def _read_holder(self, db: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        row = await (await db.execute(_READ, (self.settings.name,))).fetchone()
        self.leader_url = row["advertise_url"] if row and row["holder"] and row["live"] else None

    async def _connection(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self._db is None or self._db.closed or self._db.broken:
            self._db = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=dict_row, **self._connection_settings
            )
        return self._db

    async def _drop_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                await db.close()

    async def _release(self) -> None:
        """Give the row up (no holder, expired now) so a standby need not wait for it to expire."""
        params = {"name": self.settings.name, "holder": self.settings.holder, "epoch": self.fence.epoch}
        self._step_down()
        try:
            async with asyncio.timeout(2.0):
                db = await self._connection()
                await db.execute(_RELEASE, params)
            log.info("leader: %s released lease %s", self.settings.holder, self.settings.name)
        except (psycopg.Error, OSError, TimeoutError) as exc:
            log.warning("leader: could not release lease %s (it expires by itself): %s", self.settings.name,
                        _first_line(exc))


async def _cancel(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
