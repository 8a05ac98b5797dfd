"""`hold: prestop`'s release: the notice a pod's blocking preStop hook waits on, released through its agent.

On Kubernetes the agent runs as a sidecar of the app (same network namespace, so it counts and resets the
app's sockets) and listens on `agent_port` of the pod IP; the pod is a member of the fleet (`discovering.py`),
which gives the engine and this release its `AgentClient`.

`PreStopRelease` is the release of `hold: prestop`: the app container's preStop hook asks the agent to hold
(a notice whose id is the pod uid) and blocks until that notice is released; releasing it lets the kubelet go on
to SIGTERM. A 404 means no preStop waits yet (it may open its notice a moment later): the release posts the
notice and releases it, so the hook's hold, which opens the notice by that id, returns at once. A pod that is
no longer watched (its containers are gone) has no hook waiting: nothing to release.
"""

from __future__ import annotations

import logging
from typing import Protocol

from controller.core.errors import TemporaryError
from controller.core.models import Drain
from controller.hosts.client import AgentClient, AgentError
from controller.platforms.kubernetes.directory import PodDirectory

log = logging.getLogger("drainctl.platforms.kubernetes.pods")


class PodsNotListed(TemporaryError):
    """The source has not listed the pods yet (the controller just started or took over): ask again soon."""


class PodAgents(Protocol):
    def host(self, instance: str) -> AgentClient: ...


class PreStopRelease:
    """`hold: prestop`: release the notice (id = pod uid) the pod's blocking preStop hook waits on."""

    holds = True

    def __init__(self, hosts: PodAgents, pods: PodDirectory) -> None:
        self._hosts = hosts
        self._pods = pods

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        if not self._pods.listed:
            raise PodsNotListed(f"{drain.instance}: the pods have not been listed yet", delay_s=1.0)
        if self._pods.get(drain.instance) is None:
            log.info("%s: the pod is gone; no preStop hook is waiting any more", drain.instance)
            return
        agent = self._hosts.host(drain.instance)
        for uid in handles:
            await _release(agent, drain, uid)


async def _release(agent: AgentClient, drain: Drain, uid: str) -> None:
    """Release the notice `uid`. A 404 (the hook has not opened it yet) is not a release: the notice is posted,
    then released, so a hook that opens it a moment later finds it released and returns at once (issue 9,
    case 6: it used to be held for almost its whole window)."""
    try:
        await agent.release(uid)
        return
    except AgentError as exc:
        if exc.status != 404:
            raise
    log.info("%s: no preStop hook waits on notice %s yet; recording it released for the hook", drain.instance, uid)
    await agent.post_notice(uid, "terminate", drain.not_after)
    await agent.release(uid)

