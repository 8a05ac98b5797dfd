"""Kubernetes discovery: the watched pods as members of the one fleet (`controller/hosts/fleet.py`).

The source's list and watch write the `PodDirectory`; this listener turns each change into the fleet's: a pod
with an IP is a member (pool `sources.kubernetes.pool`, its agent the sidecar at `http://POD_IP:agent_port`,
handles its namespace and uid) as soon as the watch event that shows it arrives; a pod that is gone is dropped,
and stays while a drain of it is open. A pod without an IP yet (Pending) has no agent to call and no sockets:
it joins when its IP shows. Only a list or a watch event changes the fleet, so an API server that fails
(errors, a 410, a dropped watch) never empties it. Until the first list answered, an instance nobody knows is
a temporary error (the fleet's `expect`): a drain resumed on takeover waits for the list rather than failing.
"""

from __future__ import annotations

from controller.core.members import Member
from controller.hosts.fleet import Fleet
from controller.platforms.kubernetes.api import Pod
from controller.platforms.kubernetes.directory import PodDirectory

PLATFORM = "kubernetes"


def agent_url(ip: str, port: int) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


class PodMembers:
    """Feeds the fleet from the pod directory, one change at a time."""

    def __init__(self, pods: PodDirectory, fleet: Fleet, *, pool: str, agent_port: int, token: str) -> None:
        self._fleet = fleet
        self._pool = pool
        self._port = agent_port
        self._token = token
        fleet.expect(PLATFORM)
        pods.subscribe(self._changed)
        pods.on_listed(lambda: fleet.listed(PLATFORM))

    def member(self, pod: Pod) -> Member | None:
        """The fleet member of a pod; None while it has no IP."""
        if pod.ip is None:
            return None
        handles = {"namespace": pod.namespace, "uid": pod.uid}
        return Member(pod.name, self._pool, agent_url(pod.ip, self._port), self._token, PLATFORM, handles)

    def _changed(self, name: str, pod: Pod | None) -> None:
        member = None if pod is None else self.member(pod)
        if member is None:
            self._fleet.drop(PLATFORM, name)
        else:
            self._fleet.put(member)
