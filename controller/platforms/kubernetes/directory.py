"""The pods the Kubernetes source sees right now: the controller's inventory on Kubernetes.

The pods that match the label selector: the source writes this directory from its list and watch (it only
observes); the fleet's members follow it (`discovering.py`), the finalizer hold reads it to find ready pods and
the pod Events their uids. Listeners hear of every change (name, the pod now or None when it is gone) and of
every whole list (`on_listed`); they must not block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.platforms.kubernetes.api import Pod

Listener = Callable[[str, Pod | None], None]


class PodDirectory:
    def __init__(self) -> None:
        self._pods: dict[str, Pod] = {}
        self._listeners: list[Listener] = []
        self._listed: list[Callable[[], None]] = []
        self.listed = False
        """The source has listed the pods at least once: a pod missing now is really not there."""

    def get(self, name: str) -> Pod | None:
        return self._pods.get(name)

    def pods(self) -> list[Pod]:
        return list(self._pods.values())

    def __len__(self) -> int:
        return len(self._pods)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def on_listed(self, listener: Callable[[], None]) -> None:
        """Called after each whole list (`replace_all`), an empty one too."""
        self._listed.append(listener)

    def put(self, pod: Pod) -> None:
        if self._pods.get(pod.name) != pod:
            self._pods[pod.name] = pod
            self._tell(pod.name, pod)

    def remove(self, name: str, *, uid: str | None = None) -> None:
        """Forget `name` (only if it still is the pod `uid`, when given: a new pod may have taken the name)."""
        current = self._pods.get(name)
        if current is not None and (uid is None or current.uid == uid):
            del self._pods[name]
            self._tell(name, None)

    def replace_all(self, pods: Iterable[Pod]) -> None:
        """After a (re)list: exactly these pods, telling listeners of every pod that appeared, changed or went."""
        fresh = {pod.name: pod for pod in pods}
        for name in [name for name in self._pods if name not in fresh]:
            self.remove(name)
        for pod in fresh.values():
            self.put(pod)
        self.listed = True
        for listener in self._listed:
            listener()

    def _tell(self, name: str, pod: Pod | None) -> None:
        for listener in self._listeners:
            listener(name, pod)
