"""The controller's hands on pods: the node agent beside the app in each pod, found by the pod's IP.

On Kubernetes the agent runs as a sidecar of the app (same network namespace, so it counts and resets the
app's sockets) and listens on `agent_port` of the pod IP. `PodHosts` gives the reconciler an `AgentClient` per
pod of the `PodDirectory`.

`PreStopRelease` is the release of `hold: prestop`: the app container's preStop hook asks the agent to hold
(a notice whose id is the pod uid) and blocks until that notice is released; releasing it lets the kubelet go on
to SIGTERM. A 404 means no preStop waits yet (it may open its notice a moment later): the release posts the
notice and releases it, so the hook's hold, which opens the notice by that id, returns at once.
"""

from __future__ import annotations

import asyncio
import logging

from controller.core.errors import TemporaryError
from controller.core.models import Drain
from controller.core.ports import UnknownHost
from controller.hosts.client import AgentClient, AgentError
from controller.hosts.pooling import AgentPool
from controller.hosts.reachability import AgentReachability
from controller.platforms.kubernetes.api import Pod
from controller.platforms.kubernetes.directory import PodDirectory

log = logging.getLogger("drainctl.platforms.kubernetes.pods")


class PodsNotListed(TemporaryError):
    """The source has not listed the pods yet (the controller just started or took over): ask again soon."""


class PodHosts:
    """One agent client per pod (and pod IP); clients of pods that are gone are closed."""

    def __init__(
        self, pods: PodDirectory, *, agent_port: int, token: str, timeout_s: float, pool: AgentPool | None = None,
        reachability: AgentReachability | None = None,
    ) -> None:
        """`pool`: the process's shared agent client (each client its own pool when None)."""
        self._pool = pool
        self._pods = pods
        self._reachability = reachability
        self._port = agent_port
        self._token = token
        self._timeout_s = timeout_s
        self._clients: dict[str, tuple[str, AgentClient]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        pods.subscribe(self._changed)

    def host(self, instance: str) -> AgentClient:
        pod = self._pods.get(instance)
        if pod is None and not self._pods.listed:
            raise PodsNotListed(f"{instance}: the pods have not been listed yet", delay_s=1.0)
        if pod is None or pod.ip is None:
            why = "not among the watched pods" if pod is None else "has no IP yet"
            raise UnknownHost(f"{instance}: {why}, so its agent cannot be reached")
        known = self._clients.get(instance)
        if known is not None and known[0] == pod.ip:
            return known[1]
        observe = None if self._reachability is None else self._reachability.observer(instance)
        client = AgentClient(agent_url(pod.ip, self._port), self._token, timeout_s=self._timeout_s, pool=self._pool,
                             observe=observe)
        self._clients[instance] = (pod.ip, client)
        if known is not None:
            self._close_later(known[1])
        return client

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for _ip, client in clients.values():
            await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _changed(self, name: str, pod: Pod | None) -> None:
        known = self._clients.get(name)
        if pod is None and self._reachability is not None:
            self._reachability.forget(name)
        if known is not None and (pod is None or pod.ip != known[0]):
            del self._clients[name]
            self._close_later(known[1])

    def _close_later(self, client: AgentClient) -> None:
        task = asyncio.get_running_loop().create_task(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


class PreStopRelease:
    """`hold: prestop`: release the notice (id = pod uid) the pod's blocking preStop hook waits on."""

    holds = True

    def __init__(self, hosts: PodHosts) -> None:
        self._hosts = hosts

    async def release(self, drain: Drain, handles: tuple[str, ...]) -> None:
        try:
            agent = self._hosts.host(drain.instance)
        except UnknownHost:
            log.info("%s: the pod is gone; no preStop hook is waiting any more", drain.instance)
            return
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


def agent_url(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"
