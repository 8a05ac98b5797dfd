"""The box's init: what systemd does for the rendered units, done from the units' own lines, in the VM.

A VM's `systemctl` is a small client (bind-mounted over /usr/bin/systemctl) that hands its arguments to this
init over a UNIX socket in the VM's directory and prints the answer, so `systemctl enable --now X` in a boot
script returns when X is started (after READY=1 for Type=notify) as with systemd. The init runs each unit
from its [Service] lines: User/Group (names from the VM's own /etc/passwd), EnvironmentFile, Environment,
ExecStart, ExecStop, TimeoutStopSec, KillSignal, Restart/RestartSec/RestartPreventExitStatus, Type=notify
(NOTIFY_SOCKET, WATCHDOG_USEC), Type=oneshot, StateDirectory, AmbientCapabilities, NoNewPrivileges. At
`shutdown` it answers `is-system-running` with `stopping` and stops the started units in the reverse of their
`After=` order: ExecStop (the agent's hold), then KillSignal, then SIGKILL after TimeoutStopSec, as systemd
stops a machine whose MIG deletes it. Not emulated: the sandboxing lines (ProtectSystem=, PrivateTmp=, ...)
and watchdog enforcement.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.box.vm import Vm

START_TIMEOUT_S = 90.0
"""systemd's DefaultTimeoutStartSec."""
STOP_TIMEOUT_S = 90.0
"""systemd's DefaultTimeoutStopSec."""

SHIM = """#!/usr/bin/python3
# The box's systemctl: asks the box's init (tests/box/init.py) over its socket and prints the answer.
import json, socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.connect(SOCKET)
    sock.sendall(json.dumps(sys.argv[1:]).encode() + b"\\n")
    answer = json.loads(sock.makefile().readline())
sys.stdout.write(answer["out"])
sys.stderr.write(answer["err"])
sys.exit(answer["rc"])
"""


@dataclass(frozen=True)
class Unit:
    """A unit file, as lists of values per key (ExecStart= and Environment= may repeat)."""

    name: str
    sections: Mapping[str, Mapping[str, Sequence[str]]]

    @classmethod
    def parse(cls, name: str, text: str) -> Unit:
        sections: dict[str, dict[str, list[str]]] = {}
        current: dict[str, list[str]] = {}
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
        return cls(name, sections)

    def get(self, key: str, default: str = "", section: str = "Service") -> str:
        values = self.sections.get(section, {}).get(key, [])
        return values[-1] if values else default

    def all(self, key: str, section: str = "Service") -> list[str]:
        return [value for value in self.sections.get(section, {}).get(key, []) if value]

    def after(self) -> set[str]:
        return {name for value in self.all("After", "Unit") for name in value.split()}

    def seconds(self, key: str, default_s: float) -> float:
        value = self.get(key)
        if not value:
            return default_s
        if value.endswith("ms"):
            return float(value[:-2]) / 1000
        return float(value.removesuffix("s"))


@dataclass
class Run:
    """One run of a service's main process."""

    pid: int
    started_at: float
    exit_status: int | None = None
    stopped_by: str = ""
    """`exit` (ended by itself or its ExecStop), `signal` (KillSignal) or `kill` (SIGKILL after the timeout)."""


@dataclass
class Service:
    """A started unit and its runs; its supervisor thread restarts it per Restart=."""

    unit: Unit
    runs: list[Run] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)
    """Set when READY=1 arrived or the first run ended before it."""
    stopping: threading.Event = field(default_factory=threading.Event)
    notices: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    stop_log: list[str] = field(default_factory=list)


class Init:
    """The init of one VM: serves its systemctl, runs its units, shuts it down."""

    def __init__(self, vm: Vm) -> None:
        self.vm = vm
        self.calls: list[list[str]] = []
        self.services: dict[str, Service] = {}
        self.started_order: list[str] = []
        self.state = "running"
        self._lock = threading.Lock()
        self._logs = vm.root / "logs"
        self._logs.mkdir(exist_ok=True)
        self._socket = vm.root / "systemctl.sock"
        self._server = _Server(str(self._socket), self)
        os.chmod(self._socket, 0o666)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"init-{vm.name}", daemon=True)
        self._thread.start()

    @staticmethod
    def shim(vm_root: Path) -> str:
        """The text of the VM's systemctl (it needs the socket path before the VM exists)."""
        return SHIM.replace("SOCKET", repr(str(vm_root / "systemctl.sock")), 1)

    def log(self, unit: str) -> Path:
        return self._logs / f"{unit}.log"

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        """One systemctl invocation -> (exit status, stdout, stderr)."""
        with self._lock:
            self.calls.append(argv)
        with (self.vm.root / "systemctl.calls").open("a") as out:
            out.write(shlex.join(argv) + "\n")
        words = [word for word in argv if not word.startswith("-")]
        verb, units = (words[0], [_unit_name(word) for word in words[1:]]) if words else ("", [])
        if verb == "is-system-running":
            return (0 if self.state == "running" else 1), self.state + "\n", ""
        if verb == "is-active":
            active = all(self._active(unit) for unit in units)
            return (0 if active else 3), "\n".join("active" if self._active(u) else "inactive" for u in units), ""
        if verb in ("start", "restart") or (verb == "enable" and "--now" in argv):
            return self._start_all(units, restart=verb == "restart")
        if verb == "stop":
            for unit in units:
                self.stop(unit)
        return 0, "", ""

    def _active(self, unit: str) -> bool:
        service = self.services.get(unit)
        return bool(service and service.process and service.process.poll() is None)

    def _start_all(self, units: list[str], *, restart: bool) -> tuple[int, str, str]:
        loaded = {unit: self._load(unit) for unit in units}
        missing = [unit for unit, found in loaded.items() if found is None]
        if missing:
            return 5, "", f"Failed to start {' '.join(missing)}: Unit not found.\n"
        for unit in _ordered([found for found in loaded.values() if found is not None]):
            if restart and unit.name in self.services:
                self.stop(unit.name)
            error = self._start(unit)
            if error:
                return 1, "", error
        return 0, "", ""

    def _load(self, unit: str) -> Unit | None:
        """/etc/systemd/system first, else the image's packaged unit (haproxy), plus the VM's drop-ins."""
        path = self.vm.path(f"/etc/systemd/system/{unit}")
        packaged = Path("/lib/systemd/system") / unit
        if not path.exists() and not packaged.exists():
            return None
        text = (path if path.exists() else packaged).read_text()
        dropins = self.vm.path(f"/etc/systemd/system/{unit}.d")
        if dropins.is_dir():
            text += "".join("\n" + conf.read_text() for conf in sorted(dropins.glob("*.conf")))
        return Unit.parse(unit, text)

    def _start(self, unit: Unit) -> str:
        """Start `unit` unless it runs; '' when started (ready, for Type=notify), else systemctl's error."""
        with self._lock:
            current = self.services.get(unit.name)
            if current is not None and not current.stopping.is_set():
                return ""
            service = Service(unit)
            self.services[unit.name] = service
            if unit.name not in self.started_order:  # a restart keeps its place: shutdown order is After=
                self.started_order.append(unit.name)
        kind = unit.get("Type", "simple")
        if kind == "oneshot":
            return self._oneshot(service)
        service.thread = threading.Thread(target=self._supervise, args=(service,), daemon=True,
                                          name=f"{self.vm.name}-{unit.name}")
        service.thread.start()
        service.settled.wait(unit.seconds("TimeoutStartSec", START_TIMEOUT_S))
        if not service.ready.is_set():
            return f"Job for {unit.name} failed: it did not become ready; see its log.\n"
        return ""

    def _oneshot(self, service: Service) -> str:
        for line in service.unit.all("ExecStart"):
            process = self._spawn(service, line)
            status = process.wait()
            service.runs.append(Run(process.pid, time.time(), status, "exit"))
            if status != 0 and not line.startswith("-"):
                return f"Job for {service.unit.name} failed: exit status {status}.\n"
        service.ready.set()
        return ""

    def _supervise(self, service: Service) -> None:
        unit = service.unit
        for line in unit.all("ExecStartPre"):
            status = self._spawn(service, line).wait()
            if status != 0 and not line.startswith("-"):
                service.notices.append(f"box init: ExecStartPre exit {status}")
                service.settled.set()
                return
        prevent = {int(code) for value in unit.all("RestartPreventExitStatus") for code in value.split()}
        while not service.stopping.is_set():
            notify: socket.socket | None = None
            try:  # the socket too: a restart racing the VM's teardown finds its root gone and ends quietly
                notify = self._notify_socket(service)
                process = self._spawn(service, unit.get("ExecStart"), notify=notify)
                run = Run(process.pid, time.time())
                service.runs.append(run)
                service.process = process
                if unit.get("Type", "simple") != "notify":
                    service.ready.set()
                    service.settled.set()
                run.exit_status = process.wait()
            except Exception as exc:  # e.g. a missing EnvironmentFile: the unit fails, as with systemd
                service.notices.append(f"box init: {exc}")
                return
            finally:
                service.settled.set()
                if notify is not None:
                    with contextlib.suppress(OSError):
                        notify.close()
            if service.stopping.is_set() or not _restarts(unit.get("Restart", "no"), run.exit_status, prevent):
                return
            service.ready.clear()
            service.stopping.wait(unit.seconds("RestartSec", 0.1))

    def _notify_socket(self, service: Service) -> socket.socket:
        path = self.vm.root / "notify" / service.unit.name
        path.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o666)
        threading.Thread(target=_listen, args=(sock, service), daemon=True).start()
        return sock

    def _spawn(self, service: Service, line: str, *, notify: socket.socket | None = None,
               extra: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        unit = service.unit
        privileged = line.startswith("+")
        env = self._environment(unit)
        argv = _expand(shlex.split(line.lstrip("-@+!")), env)
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.getsockname()
            watchdog_s = unit.seconds("WatchdogSec", 0)
            if watchdog_s:
                env["WATCHDOG_USEC"] = str(int(watchdog_s * 1e6))
        user = None if privileged else (unit.get("User") or None)
        self._state_directory(unit, user)
        return self.vm.popen(
            argv, env={**env, **(extra or {})}, log=self.log(unit.name), user=user,
            group=unit.get("Group") or None, caps=unit.get("AmbientCapabilities").split(),
            no_new_privs=unit.get("NoNewPrivileges") == "yes",
        )

    def _environment(self, unit: Unit) -> dict[str, str]:
        env: dict[str, str] = {}
        for value in unit.all("EnvironmentFile"):
            path = value.removeprefix("-")
            text = self._read(path)
            if text is None and not value.startswith("-"):
                raise FileNotFoundError(f"{unit.name}: EnvironmentFile {path}")
            env.update(_env_lines(text or ""))
        for value in unit.all("Environment"):
            env.update(pair.split("=", 1) for pair in shlex.split(value) if "=" in pair)  # type: ignore[misc]
        user = unit.get("User")
        if user:
            env.update(USER=user, LOGNAME=user, HOME="/nonexistent")
        return env

    def _read(self, path: str) -> str | None:
        result = self.vm.exec(["cat", path])
        return result.stdout if result.returncode == 0 else None

    def _state_directory(self, unit: Unit, user: str | None) -> None:
        for name in unit.get("StateDirectory").split():
            mode = unit.get("StateDirectoryMode", "0755")
            owner = f"{user}:{unit.get('Group') or user}" if user else "root:root"
            self.vm.exec(["sh", "-c", f"install -d -m {mode} /var/lib/{name} && chown {owner} /var/lib/{name} "
                          f"&& chmod {mode} /var/lib/{name}"])

    def stop(self, name: str) -> None:
        """Stop one service as systemd does: ExecStop, then KillSignal, then SIGKILL, each within TimeoutStopSec."""
        service = self.services.get(name)
        if service is None or service.stopping.is_set():
            return
        service.stopping.set()
        process = service.process
        if process is None or process.poll() is not None:
            return
        unit = service.unit
        timeout_s = unit.seconds("TimeoutStopSec", STOP_TIMEOUT_S)
        for line in unit.all("ExecStop"):
            service.stop_log.append(f"ExecStop {line}")
            stopper = self._spawn(service, line, extra={"MAINPID": str(process.pid)})
            try:
                stopper.wait(timeout_s)
            except subprocess.TimeoutExpired:
                service.stop_log.append("ExecStop timed out")
                _kill_group(stopper.pid, signal.SIGKILL)
        run = service.runs[-1]
        if process.poll() is not None:
            run.stopped_by = "exit"
            return
        kill_signal = getattr(signal, unit.get("KillSignal", "SIGTERM"))
        _kill_group(process.pid, kill_signal)
        _kill_group(process.pid, signal.SIGCONT)  # as systemd: so that a stopped process gets it too
        try:
            process.wait(timeout_s)
            run.stopped_by = "signal"
        except subprocess.TimeoutExpired:
            _kill_group(process.pid, signal.SIGKILL)
            process.wait(30)
            run.stopped_by = "kill"
        if service.thread is not None:
            service.thread.join(30)

    def shutdown(self) -> None:
        """The machine stops: every started unit in the reverse of its start (After=) order."""
        self.state = "stopping"
        for name in reversed(_ordered([self.services[name].unit for name in self.started_order
                                        if name in self.services])):
            self.stop(name.name)
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _restarts(policy: str, status: int | None, prevent: set[int]) -> bool:
    if status is None or status in prevent:
        return False
    if policy == "always":
        return True
    if policy == "on-failure":
        return status != 0
    if policy == "on-abnormal":
        return status < 0
    return False


def _ordered(units: list[Unit]) -> list[Unit]:
    """Start order: a unit after the units it names in After= (stable otherwise)."""
    names = {unit.name for unit in units}
    done: list[Unit] = []
    pending = list(units)
    while pending:
        for unit in pending:
            if not (unit.after() & names) - {placed.name for placed in done}:
                done.append(unit)
                pending.remove(unit)
                break
        else:
            done += pending
            break
    return done


def _expand(words: list[str], env: Mapping[str, str]) -> list[str]:
    """systemd's ExecStart expansion: a lone `$VAR` splits on whitespace, `${VAR}` is one word."""
    expanded: list[str] = []
    for word in words:
        if word.startswith("$") and not word.startswith("${") and word[1:].isidentifier():
            expanded += env.get(word[1:], "").split()
            continue
        expanded.append(re.sub(r"\$\{(\w+)\}", lambda match: env.get(match.group(1), ""), word))
    return expanded


def _unit_name(word: str) -> str:
    return word if "." in word else f"{word}.service"


def _env_lines(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip('"').strip("'")
    return env


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _listen(sock: socket.socket, service: Service) -> None:
    with contextlib.suppress(OSError):
        while True:
            message = sock.recv(4096).decode(errors="replace")
            if not message:
                return
            service.notices.append(message)
            if "READY=1" in message.split("\n"):
                service.ready.set()
                service.settled.set()


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, init: Init) -> None:
        self.init = init
        super().__init__(path, _Handler)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        argv = json.loads(self.rfile.readline())
        try:
            status, out, err = server.init.handle(argv)
        except Exception as exc:  # the boot script sees it as a failed systemctl, the test in the log
            status, out, err = 1, "", f"box init: {exc!r}\n"
        self.wfile.write(json.dumps({"rc": status, "out": out, "err": err}).encode() + b"\n")


def apply_cloud_config(vm: Vm, document: str, *, timeout_s: float = 900.0) -> subprocess.CompletedProcess[str]:
    """Apply a `#cloud-config` as cloud-init would on first boot: write_files, then runcmd (as root)."""
    import yaml

    if not document.startswith("#cloud-config"):
        raise ValueError("not a cloud-config document")
    config = yaml.safe_load(document) or {}
    for entry in config.get("write_files", []):
        content = entry.get("content", "")
        quoted = shlex.quote(entry["path"])
        command = (f"install -d $(dirname {quoted}) && cat > {quoted} && "
                   f"chmod {entry.get('permissions', '0644')} {quoted}")
        written = subprocess.run([*vm.nsenter(), "sh", "-c", command], input=content, text=True,
                                 capture_output=True, env=vm.environment(), check=False, timeout=60)
        if written.returncode != 0:
            raise RuntimeError(f"{vm.name}: write_files {entry['path']}: {written.stderr.strip()}")
    script = "\n".join(_runcmd(command) for command in config.get("runcmd", []))
    return vm.exec(["sh", "-ec", script], timeout_s=timeout_s)


def _runcmd(command: str | list[str]) -> str:
    """cloud-init: a list is argv (quoted), a string is a shell line."""
    return command if isinstance(command, str) else shlex.join(command)
