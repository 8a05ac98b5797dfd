"""The fleet: one object that starts the testbed's processes and guarantees none of them outlives it.

    with Fleet(budget) as fleet:
        a, b = fleet.start_server("A"), fleet.start_server("B")
        lb = fleet.start_haproxy([a, b])
        prom = fleet.start_prometheus([a, b])
        swarm = fleet.start_swarm(lb.ws_url, count=1000, duration_s=600)
        swarm.wait_joined()
        a.drain(rate_per_s=200)
        report = swarm.stop()

    Issue 5's parts on top (docs/testbed.md, "Agents, the controller and the platform"):

        agent_a = fleet.start_agent(a)                       # drainctl agent beside server A
        ctl = fleet.start_controller(fleet.controller_config([agent_a], prometheus=prom))   # drainctl run
        platform = fleet.platform(controller=ctl, lb=lb)     # the supervisor playing the cloud
        platform.retire(a, agent=agent_a, notice_s=30).wait_deleted(60)

Each start returns once the process is ready (its ready line, its health endpoint), never after a fixed sleep.
Leaving the with-block, normally, by an exception or by Ctrl-C, stops every process (SIGCONT, SIGTERM, SIGKILL
after a grace period) and removes the workdir if the fleet created it. If the harness itself is killed, the
kernel kills the children (see `supervising`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from controller.core.budget import Budget
from controller.core.errors import PermanentError
from testbed.addresses import HostPort
from testbed.harness import agents, controllers, haproxy, prometheus
from testbed.harness.agents import AgentProcess
from testbed.harness.controllers import ControllerProcess
from testbed.harness.haproxy import Balance, HealthCheck, LoadBalancer
from testbed.harness.platform import Platform
from testbed.harness.ports import free_port
from testbed.harness.prometheus import Prometheus
from testbed.harness.servers import ServerEndpoints, ServerProcess
from testbed.harness.supervising import Supervised, stop_all
from testbed.harness.swarms import SwarmProcess
from testbed.harness.tokens import new_token_file, write_secret
from testbed.harness.waiting import wait_for

START_TIMEOUT_S = 60.0
"""How long a process may take to become ready; generous, the machine is shared and may be busy."""
PORT_ATTEMPTS = 3
"""Starts of HAProxy/Prometheus retried with another port when someone else took the free one first."""

DRAINCTL = (sys.executable, "-c", "from controller.cli import main; main()")
"""The `drainctl` command of this interpreter, whether or not the console script is on PATH."""


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise PermanentError(f"{name} is not installed (Debian: apt-get install -y {name}); `make setup` installs it")
    return found


class Fleet:
    """Servers, HAProxy, Prometheus and swarms as child processes, torn down together."""

    def __init__(self, budget: Budget, workdir: Path | None = None) -> None:
        self.budget = budget
        self._owns_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="drainctl-fleet-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._processes: list[Supervised] = []
        self.servers: dict[str, ServerProcess] = {}
        self.load_balancers: list[LoadBalancer] = []
        self.prometheuses: list[Prometheus] = []
        self.swarms: list[SwarmProcess] = []
        self.agents: dict[str, AgentProcess] = {}
        self.controllers: list[ControllerProcess] = []
        self.platforms: list[Platform] = []
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every process and remove the workdir if this fleet created it. Safe to call twice."""
        for platform in self.platforms:
            platform.close()
        processes, self._processes = self._processes, []
        stop_all(processes)
        for agent in self.agents.values():
            agent.close()
        for controller in self.controllers:
            controller.close()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pids(self) -> list[int]:
        """PIDs of every process started so far (for tests that check nothing survives)."""
        return [p.pid for p in self._processes]

    @property
    def ports(self) -> list[HostPort]:
        """Every address a process of this fleet listens on."""
        addresses = [address for s in self.servers.values() for address in (s.listen, s.admin)]
        addresses += [lb.frontend for lb in self.load_balancers]
        addresses += [p.address for p in self.prometheuses]
        addresses += [a.listen for a in self.agents.values()] + [c.api for c in self.controllers]
        return addresses

    def start_command(self, name: str, argv: Sequence[str], *, read_events: bool = True) -> Supervised:
        """Start any command under the fleet's supervision (log in the workdir, torn down with the fleet)."""
        process = Supervised(
            name, argv, log_path=self.workdir / f"{name}.log", cwd=self.workdir, env=self._env, read_events=read_events
        )
        self._processes.append(process)
        return process

    def start_server(self, name: str, fault: str | None = None, idle_timeout_s: float | None = None) -> ServerProcess:
        """A reference server on loopback ports chosen by the kernel; returns once it printed its ready line."""
        if name in self.servers:
            raise PermanentError(f"a server called {name!r} is already running in this fleet")
        token = secrets.token_urlsafe(24)
        token_file = self.workdir / f"{name}.token"
        with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(token)  # created 0600: the admin token is a secret
        idle_s = self.budget.server_idle_timeout_s if idle_timeout_s is None else idle_timeout_s
        argv = [*DRAINCTL, "testbed", "server", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
        argv += ["--admin-token-file", str(token_file), "--name", name, "--idle-timeout", f"{idle_s:g}"]
        if fault:
            argv += ["--fault", fault]
        process = self.start_command(f"server-{name}", argv)
        ready = ServerEndpoints.from_ready(process.wait_event("ready", START_TIMEOUT_S))
        server = ServerProcess(process, ready, token)
        self.servers[name] = server
        return server

    def start_haproxy(
        self, servers: Sequence[ServerProcess], health: HealthCheck | None = None, balance: Balance = "leastconn"
    ) -> LoadBalancer:
        """HAProxy in front of `servers`; returns once every server is UP in it. `balance="roundrobin"` picks
        servers as a cloud load balancer does, blind to their open sockets (testbed/harness/haproxy.py)."""
        backends = [(s.name, s.listen) for s in servers]
        index = len(self.load_balancers)
        config_path = self.workdir / f"haproxy-{index}.cfg"
        for attempt in range(1, PORT_ATTEMPTS + 1):
            frontend = free_port()
            runtime_socket = f"drainctl-lb-{os.getpid()}-{secrets.token_hex(6)}"
            config_path.write_text(
                haproxy.render_config(
                    self.budget,
                    backends,
                    frontend=frontend,
                    runtime_socket=runtime_socket,
                    health=health,
                    maxconn=haproxy.fitting_maxconn(),
                    balance=balance,
                ),
                encoding="utf-8",
            )
            argv = [_binary("haproxy"), "-db", "-f", str(config_path)]
            process = self.start_command(f"haproxy-{index}", argv, read_events=False)
            lb = LoadBalancer(process, frontend, runtime_socket)
            if self._wait_started(process, lb.ready, "haproxy", last_attempt=attempt == PORT_ATTEMPTS):
                break
        for server in servers:
            lb.wait_state(server.name, "UP", timeout_s=START_TIMEOUT_S)
        self.load_balancers.append(lb)
        return lb

    def start_prometheus(self, servers: Sequence[ServerProcess]) -> Prometheus:
        """Prometheus scraping every server each second; returns once each server has been scraped."""
        index = len(self.prometheuses)
        config_path = self.workdir / f"prometheus-{index}.yml"
        config_path.write_text(prometheus.render_config([(s.name, s.listen) for s in servers]), encoding="utf-8")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            address = free_port()
            argv = [
                _binary("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / f'prometheus-{index}-data'}",
                f"--web.listen-address={address}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ]
            process = self.start_command(f"prometheus-{index}", argv, read_events=False)
            prom = Prometheus(process, address)
            if self._wait_started(process, prom.ready, "prometheus", last_attempt=attempt == PORT_ATTEMPTS):
                break
        prom.wait_scraped([s.name for s in servers], timeout_s=START_TIMEOUT_S)
        self.prometheuses.append(prom)
        return prom

    def start_swarm(
        self,
        url: str,
        *,
        count: int,
        duration_s: float,
        heartbeat_interval_s: float | None = None,
        heartbeat_timeout_s: float | None = None,
        connect_timeout_s: float | None = None,
        connect_rate_per_s: float | None = None,
        token_prefix: str | None = None,
        topic: str | None = None,
    ) -> SwarmProcess:
        """A swarm of `count` clients on `url`; heartbeat timers default to the budget's. Returns at once:
        call `wait_joined()` to wait for the clients."""
        index = len(self.swarms)
        report = self.workdir / f"swarm-{index}.json"
        interval_s = self.budget.heartbeat_interval_s if heartbeat_interval_s is None else heartbeat_interval_s
        timeout_s = self.budget.heartbeat_timeout_s if heartbeat_timeout_s is None else heartbeat_timeout_s
        argv = [*DRAINCTL, "testbed", "clients", "--url", url, "--count", str(count)]
        argv += ["--heartbeat-interval", f"{interval_s:g}", "--heartbeat-timeout", f"{timeout_s:g}"]
        argv += ["--duration", f"{duration_s:g}", "--report", str(report)]
        optional = {
            "--connect-timeout": connect_timeout_s,
            "--connect-rate": connect_rate_per_s,
            "--token-prefix": token_prefix,
            "--topic": topic,
        }
        for flag, value in optional.items():
            if value is not None:
                argv += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        swarm = SwarmProcess(self.start_command(f"swarm-{index}", argv), report, count)
        self.swarms.append(swarm)
        return swarm

    def start_agent(
        self,
        server: ServerProcess,
        *,
        fallback: Mapping[str, Any] | None = None,
        app_timeout_s: float = agents.APP_TIMEOUT_S,
        extra: Mapping[str, Any] | None = None,
        fail_first: Mapping[str, int] | None = None,
    ) -> AgentProcess:
        """A node agent beside `server` (`drainctl agent`): it counts and resets the sockets on the server's
        WebSocket port and drains it through its admin route. `fallback` is the agent.yaml `fallback:` section
        (None: the agent's defaults, fallback enabled); `extra` adds top-level keys of agent.yaml (`webhooks`,
        `log`). `fail_first` ({"resets": N, "releases": M}): run `drainctl testbed agent` instead, which answers
        503 to the first N resets and M releases (testbed/agent_faults.py). Returns once it printed its ready
        line."""
        name = server.name
        if name in self.agents:
            raise PermanentError(f"an agent for {name!r} is already running in this fleet")
        token_file, app_token_file = self.workdir / f"agent-{name}.token", self.workdir / f"agent-{name}-app.token"
        token = new_token_file(token_file)
        write_secret(app_token_file, server.admin_token)
        config_path = self.workdir / f"agent-{name}.yaml"
        config_path.write_text(
            agents.render_config(server, token_file=token_file, app_token_file=app_token_file, instance=name,
                                 app_timeout_s=app_timeout_s, fallback=fallback, extra=extra),
            encoding="utf-8",
        )
        argv = [*DRAINCTL, "agent", "--config", str(config_path)]
        if fail_first:
            argv = [*DRAINCTL, "testbed", "agent", "--config", str(config_path),
                    *(f"--fail-{kind}={count}" for kind, count in fail_first.items())]
        process = self.start_command(f"agent-{name}", argv)
        agent = AgentProcess(process, process.wait_event("ready", START_TIMEOUT_S), name=name, token=token,
                             token_file=token_file, server=server)
        self.agents[name] = agent
        return agent

    def controller_config(self, agents: Sequence[AgentProcess], **options: Any) -> dict[str, Any]:
        """controller.yaml as a mapping for `agents` (see `controllers.controller_config` for `options`), with
        the journal and the API token file in the workdir; the budget defaults to the fleet's."""
        token_file = self.workdir / "controller-api.token"
        if not token_file.exists():
            new_token_file(token_file)
        options.setdefault("budget", self.budget)
        return controllers.controller_config(agents, journal=self.workdir / "journal.sqlite", token_file=token_file,
                                             **options)

    def start_controller(self, config: Mapping[str, Any]) -> ControllerProcess:
        """`drainctl run` with `config` (see `controllers.controller_config`); returns once it printed its ready
        line. Start the same config again after `kill()` to restart it on the same journal."""
        index = len(self.controllers)
        config_path = self.workdir / f"controller-{index}.yaml"
        config_path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        token_path = Path(str(config["api"]["token_file"]))
        token = token_path.read_text(encoding="utf-8").strip()
        process = self.start_command(f"controller-{index}", [*DRAINCTL, "run", "--config", str(config_path)])
        controller = ControllerProcess(process, process.wait_event("ready", START_TIMEOUT_S), token=token)
        self.controllers.append(controller)
        return controller

    def platform(self, *, controller: ControllerProcess | None = None, lb: LoadBalancer | None = None) -> Platform:
        """The supervisor playing the cloud for this fleet's servers (see `testbed.harness.platform`)."""
        platform = Platform(controller=controller, lb=lb)
        self.platforms.append(platform)
        return platform

    def _wait_started(self, process: Supervised, ready: Callable[[], bool], what: str, *, last_attempt: bool) -> bool:
        """True once `ready()`; False if the process exited first (its port was taken) and attempts are left."""

        def started() -> bool:
            if not process.alive():
                raise PermanentError(f"{what} exited with code {process.popen.returncode}:\n{process.log_tail()}")
            return ready()

        try:
            wait_for(started, timeout_s=START_TIMEOUT_S, what=f"{what} to start (log {process.log_path})")
        except PermanentError:
            if last_attempt:
                raise
            return False
        return True
