"""Which regional MIGs the GCP source polls and its discovery lists: named in config, or selected by label.

A managed instance group has no labels of its own in the Compute API (the `InstanceGroupManager` resource has
no `labels` field, so `instanceGroupManagers.aggregatedList` has nothing to `filter` on). What carries labels
is what the group makes: its instances get the labels of their instance template (`properties.labels`) with
the group's `allInstancesConfig.properties.labels` on top. So `group_labels` selects every regional MIG of the
project whose instances get all those labels: one `aggregatedList` of the project's MIGs per `refresh_s`, and
one `instanceTemplates.get` per template never seen before (templates are immutable, so a template's labels
are read once). A MIG in the middle of a rolling update (several `versions`) is selected when any of its
templates matches: the instances it is creating carry the label. Zonal MIGs are not polled (the source reads
regional groups) and are logged once.

A selection that fails (429, 5xx, a refused token, a malformed answer) keeps the groups it found last, so an
outage never blinds the source or empties the inventory; with nothing found yet, the error reaches the caller.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from controller.core.errors import DrainctlError

log = logging.getLogger("drainctl.platforms.gcp.selecting")


@dataclass(frozen=True)
class Group:
    """One regional MIG."""

    region: str
    name: str

    def __str__(self) -> str:
        return f"{self.region}/{self.name}"


class Selection(Protocol):
    async def groups(self) -> list[Group]:
        """The MIGs to read now; drainctl errors only."""
        ...


class GroupLister(Protocol):
    async def aggregated_groups(self) -> list[Any]: ...

    async def instance_template(self, url: str) -> dict[str, Any]: ...


class Named:
    """The MIGs named in config."""

    def __init__(self, groups: Sequence[Group]) -> None:
        self._groups = list(groups)

    def __str__(self) -> str:
        return ", ".join(map(str, self._groups))

    async def groups(self) -> list[Group]:
        return self._groups


def selection(groups: Sequence[Group] | Selection) -> Selection:
    """A fixed list of groups as a selection; a selection as itself."""
    return Named(groups) if isinstance(groups, Sequence) else groups


def regional(raw: Any) -> Group | None:
    """The region and name of a regional MIG; None for a zonal or unusable one."""
    name, region = (raw.get("name"), raw.get("region")) if isinstance(raw, dict) else (None, None)
    if not isinstance(name, str) or not name or not isinstance(region, str) or not region:
        return None
    return Group(region.rstrip("/").rsplit("/", 1)[-1], name)


def templates(raw: dict[str, Any]) -> set[str]:
    """The instance template URLs a MIG creates instances from (every version's, else its own)."""
    versions = raw.get("versions")
    listed = versions if isinstance(versions, list) else []
    urls = {url for v in listed if isinstance(v, dict) and isinstance(url := v.get("instanceTemplate"), str) and url}
    own = raw.get("instanceTemplate")
    return urls or ({own} if isinstance(own, str) and own else set())


def labels_at(raw: Any, *keys: str) -> dict[str, str]:
    """The labels object at `keys` inside `raw` ({} when any step is missing or not an object)."""
    for key in keys:
        raw = raw.get(key) if isinstance(raw, dict) else None
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


class Labelled:
    """Every regional MIG of the project whose instances get all of `labels` (see the module doc)."""

    def __init__(
        self, api: GroupLister, labels: Mapping[str, str], *, refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._labels = dict(labels)
        self._refresh_s = refresh_s
        self._clock = clock
        self._templates: dict[str, dict[str, str]] = {}
        self._found: list[Group] | None = None
        self._at = -math.inf
        self._lock = asyncio.Lock()
        self._skipped: set[str] = set()

    def __str__(self) -> str:
        return "MIGs labelled " + ",".join(f"{k}={v}" for k, v in sorted(self._labels.items()))

    async def groups(self) -> list[Group]:
        async with self._lock:
            if self._found is not None and self._clock() - self._at < self._refresh_s:
                return self._found
            try:
                found = await self._select()
            except DrainctlError as exc:
                if self._found is None:
                    raise
                log.warning("gcp: selecting the %s failed (%s); keeping the %d found before", self, exc,
                            len(self._found))
                return self._found
            if found != self._found:
                log.info("gcp: %s: %s", self, ", ".join(map(str, found)) or "none")
            self._found, self._at = found, self._clock()
            return found

    async def _select(self) -> list[Group]:
        found = []
        for raw in await self._api.aggregated_groups():
            group = regional(raw)
            if group is None:
                self._skip(f"{raw.get('name') if isinstance(raw, dict) else raw!r}: not a regional MIG")
            elif await self._matches(raw):
                found.append(group)
        return sorted(found, key=str)

    async def _matches(self, raw: dict[str, Any]) -> bool:
        on_top = labels_at(raw, "allInstancesConfig", "properties", "labels")
        for url in templates(raw) or {""}:
            labels = {**(await self._template_labels(url) if url else {}), **on_top}
            if all(labels.get(key) == value for key, value in self._labels.items()):
                return True
        return False

    async def _template_labels(self, url: str) -> dict[str, str]:
        if url not in self._templates:
            template = await self._api.instance_template(url)
            self._templates[url] = labels_at(template, "properties", "labels")
        return self._templates[url]

    def _skip(self, why: str) -> None:
        if why not in self._skipped:
            self._skipped.add(why)
            log.info("gcp: %s: skipped %s", self, why)
