"""The drain controller the harness started (`drainctl run`), its config, and the API calls tests make on it.

`drainctl run --config controller.yaml` prints `{"event": "ready", "api": "HOST:PORT", "pid": PID}` once its API
is bound and its journal resumed. The config is a plain mapping (`controller_config` builds the usual one) so a
test can change any key, and starting the same mapping again after a `kill()` restarts the controller on the
same journal: that is how the kill -9 scenario resumes.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from controller.core.budget import Budget
from testbed.addresses import HostPort, ready_address
from testbed.harness.agents import AgentProcess
from testbed.harness.http import ProcessApi
from testbed.harness.prometheus import Prometheus
from testbed.harness.supervising import Supervised
from testbed.harness.waiting import wait_for

_HTTP_TIMEOUT_S = 15.0
POOL = "web"

SOCKET_QUERY = 'sum(drainctl_testbed_open_sockets{server="{instance}"})'
"""The reference server's gauge, with the `server` label the harness's Prometheus adds per target; a real
app's controller.yaml names its own (controller/config.py, docs/runbook.md)."""
ENGINE = {"poll_interval_s": 0.25, "retry_initial_s": 0.25, "retry_max_s": 2.0}
"""Faster passes than the daemon's defaults: the testbed's drains last seconds, not minutes."""


def controller_config(
    agents: Sequence[AgentProcess],
    *,
    journal: Path,
    token_file: Path,
    budget: Budget,
    prometheus: Prometheus | None = None,
    max_draining: int = 1,
    local_poll_interval_s: float = 1.0,
    agent_urls: Mapping[str, str] | None = None,
    agent_token_files: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """controller.yaml as a mapping: one pool `web` holding every agent's instance, the API on a free port.

    `agent_urls` / `agent_token_files` replace an instance's agent address or token (an unreachable agent, a
    wrong token) without touching the agent itself.
    """
    urls, tokens = dict(agent_urls or {}), dict(agent_token_files or {})
    config: dict[str, Any] = {
        "journal": str(journal),
        "budget": budget.as_dict(),
        "disruption": {"default_max_draining": max_draining},
        "instances": {
            agent.name: {
                "pool": POOL,
                "agent_url": urls.get(agent.name, agent.url),
                "agent_token_file": str(tokens.get(agent.name, agent.token_file)),
            }
            for agent in agents
        },
        "agents": {"timeout_s": 3.0},
        "api": {"listen": "127.0.0.1:0", "token_file": str(token_file)},
        "sources": {"local": {"enabled": True, "poll_interval_s": local_poll_interval_s}, "manual": {"enabled": True}},
        "engine": dict(ENGINE),
    }
    if prometheus is not None:
        config["prometheus"] = {"url": prometheus.url, "query": SOCKET_QUERY}
    return config


class ControllerProcess:
    """A running controller: its API (with the token) and its metrics."""

    def __init__(self, process: Supervised, ready: Mapping[str, Any], *, token: str) -> None:
        self.process = process
        self.token = token
        self.api: HostPort = ready_address(ready, "api", who="controller")
        self.pid = process.pid
        self._api = ProcessApi(self.url, name="controller", token=token, timeout_s=_HTTP_TIMEOUT_S)
        """One keep-alive connection pool (thread-safe): a client per call would cost a TLS context each time."""

    def __repr__(self) -> str:
        return f"ControllerProcess(api={self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"http://{self.api}"

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """One API call with the controller's token (or `token`); the raw response, any status."""
        return self._api.request(method, path, token=token, **kwargs)

    def _ok(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = self._api.json(method, path, json=json)
        return body

    def post_event(self, instance: str, *, kind: str, not_after: float, notice_id: str) -> dict[str, Any]:
        """Push a platform event (the local source's push half); `{"disposition", "drain"}`."""
        body = {"instance": instance, "kind": kind, "not_after": not_after, "id": notice_id, "source": "local"}
        return self._ok("POST", "/v1/events", json=body)

    def drain(self, instance: str, **options: Any) -> dict[str, Any]:
        """A manual drain (`deadline_s`, `rate_per_s`, `dry_run`, `request_id`); `{"disposition", "drain"}`."""
        return self._ok("POST", "/v1/drains", json={"instance": instance, **options})

    def instance(self, name: str) -> dict[str, Any]:
        return self._ok("GET", f"/v1/instances/{quote(name, safe='')}")

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        drains: list[dict[str, Any]] = self._ok("GET", f"/v1/history?limit={limit}")["drains"]
        return drains

    def drains_of(self, instance: str) -> list[dict[str, Any]]:
        """Every episode of `instance`, oldest first."""
        return sorted((d for d in self.history(1000) if d["instance"] == instance), key=lambda d: d["id"])

    def drain_detail(self, drain_id: int) -> dict[str, Any]:
        """One episode with its journal lines."""
        return self._ok("GET", f"/v1/drains/{drain_id}")

    def reset(self, instance: str) -> dict[str, Any]:
        return self._ok("POST", f"/v1/instances/{quote(instance, safe='')}/reset")

    def metrics_text(self) -> str:
        return self._api.ok("GET", "/metrics").text

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """e.g. `metric("drainctl_drains_total", {"outcome": "graceful"})`."""
        return self._api.metric(name, labels)

    def wait_phase(self, instance: str, phases: Sequence[str], timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until the instance's latest drain is in one of `phases`; its status."""

        def reached() -> dict[str, Any] | None:
            status = self.instance(instance)
            drain = status.get("drain") or {}
            return status if drain.get("phase") in phases else None

        return wait_for(reached, timeout_s=timeout_s, what=f"controller: {instance} to reach {'/'.join(phases)}")

    def log_text(self) -> str:
        return self.process.log_path.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """Release the HTTP connection pool (the fleet does, when it closes)."""
        self._api.close()

    def kill(self) -> int | None:
        """SIGKILL: the controller dies mid-whatever, journal and all as they are on disk."""
        self.process.signal(signal.SIGKILL)
        return self.process.wait_exit(10.0)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait; the exit code (0 expected), or None if it is still running."""
        self.process.signal(signal.SIGTERM)
        return self.process.wait_exit(timeout_s)
