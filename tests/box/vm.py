"""A VM of the box: Linux namespaces standing in for one cloud machine.

Each VM is a long-lived holder process (`unshare --net --mount --uts`) whose namespaces every command of that
VM enters (`nsenter`): its own network namespace (a veth on the box's bridge, the VM's address, a default route
to the box, so 169.254.169.254 and the box's services are reachable), its own UTS namespace (hostname = the VM's
name) and its own mount namespace. In the mount namespace /etc, /opt, /var/lib and /usr/local are overlays on
the machine's own directories (writes land in the VM's directory: the boot script's `useradd`, /etc/hosts, the CA
bundle stay private), and the directories of the deployment (C5: /etc/drainctl, /var/lib/drainctl, /opt/drainctl,
/opt/app, /etc/systemd/system, /etc/haproxy) are bind mounts of per-VM directories the test can read.
Name resolution is the VM's /etc/hosts; the box's CA is appended to the VM's CA bundle.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OVERLAID = ("/etc", "/var/lib", "/usr/local")
"""Copy-on-write per VM: the machine's files are visible, the VM's writes stay in the VM's directory."""
EMPTY = ("/opt", "/root")
"""Empty per VM, as on a fresh image (the machine's /opt holds package mirrors a VM must not see)."""
IMAGE_ONLY = ("/etc/pip.conf", "/etc/xdg/pip")
"""The machine's pip configuration (its local mirrors): not on a cloud image, so removed in the VM."""
PRIVATE = (
    "/etc/drainctl", "/var/lib/drainctl", "/opt/drainctl", "/opt/app", "/etc/systemd/system", "/etc/haproxy",
)
"""Empty per-VM directories bind-mounted over these paths (C5), readable from the test as `vm.path(...)`."""
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SYSTEMCTL = "/usr/bin/systemctl"
VM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""systemd's default PATH: the image's python3 (/usr/bin), not a developer's."""
SETUP_TIMEOUT_S = 30.0


class BoxError(RuntimeError):
    """The box could not build or run something (a namespace, a link, a mount): the test fails with it."""


def run(argv: Sequence[str], *, timeout_s: float = SETUP_TIMEOUT_S) -> str:
    """Run a setup command on the machine; its stderr in the error when it fails."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise BoxError(f"{shlex.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def prerequisites() -> str | None:
    """Why the box cannot run on this machine (not root, a program missing), or None."""
    if os.geteuid() != 0:
        return "the box needs root (network and mount namespaces, veth, bridges)"
    for program in ("ip", "unshare", "nsenter", "setpriv", "mount"):
        if shutil.which(program) is None:
            return f"the box needs `{program}` (util-linux / iproute2)"
    return None


@dataclass
class Bridge:
    """The box's L2 segment in the machine's network namespace; its addresses (/32 each) are the box's services,
    each VM's address is routed to it, so the plan's addresses work whatever subnet they are in."""

    name: str
    addresses: list[str]

    @classmethod
    def create(cls, name: str, addresses: Sequence[str]) -> Bridge:
        # A bridge without an address of its own takes the lowest MAC of its ports: a VM plugged in later
        # would change it, and every VM would lose the box's services until its ARP entries expire (~40 s:
        # the leases and the journal time out). A locally administered MAC of its own stays.
        mac = "02:62:78:" + ":".join(f"{byte:02x}" for byte in os.urandom(3))
        run(["ip", "link", "add", name, "address", mac, "type", "bridge"])
        bridge = cls(name, [])
        for address in addresses:
            bridge.add_address(address)
        run(["ip", "link", "set", name, "up"])
        return bridge

    def add_address(self, cidr: str) -> None:
        """A box-side service address (`169.254.169.254/32`, the database's, the load balancer's)."""
        if cidr not in self.addresses:
            run(["ip", "addr", "add", cidr, "dev", self.name])
            self.addresses.append(cidr)

    def close(self) -> None:
        with contextlib.suppress(BoxError):
            run(["ip", "link", "del", self.name])


@dataclass(frozen=True)
class VmSpec:
    name: str
    """The instance name: the hostname inside the VM."""
    address: str
    """The VM's private address (from the plan, the fake Compute or ARM), a /32 on its eth0."""
    hosts: Mapping[str, str]
    """Name -> address lines of the VM's /etc/hosts (the cloud names, the metadata server, the database)."""
    ca_bundle: Path | None = None
    """The CA bundle to install as the VM's system store (the machine's + the box CA)."""
    hostname: str = ""
    """The guest's host name when it differs from the instance name (Azure: `api000003`)."""

    @property
    def host_name(self) -> str:
        return self.hostname or self.name


class Vm:
    """One running VM: `exec`/`popen` run commands in its namespaces; `path(p)` is where its private `p` lives."""

    def __init__(self, spec: VmSpec, root: Path, holder: subprocess.Popen[bytes], link: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.root = root
        self._holder = holder
        self._link = link

    @property
    def ip(self) -> str:
        return self.spec.address

    @property
    def pid(self) -> int:
        return self._holder.pid

    @classmethod
    def boot(cls, spec: VmSpec, root: Path, bridge: Bridge, *, link: str, systemctl: str | None = None) -> Vm:
        """Make the namespaces, plug the VM into `bridge` (host side `link`), mount its private directories;
        `systemctl` (a script's text) replaces the VM's /usr/bin/systemctl."""
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        if systemctl is not None:
            (root / "systemctl").write_text(systemctl)
            os.chmod(root / "systemctl", 0o755)
        holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--uts", "--propagation", "private", "--",
             "sh", "-c", "echo ready; exec sleep infinity"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        vm = cls(spec, root, holder, link)
        try:
            assert holder.stdout is not None
            if holder.stdout.readline().strip() != b"ready":
                raise BoxError(f"{spec.name}: the namespace holder did not start")
            vm._plug(bridge)
            vm._mount()
        except BaseException:
            vm.destroy()
            raise
        return vm

    def path(self, inside: str) -> Path:
        """The machine-side path of a file under one of the VM's PRIVATE directories (or an overlaid one)."""
        for private in PRIVATE:
            if inside == private or inside.startswith(private + "/"):
                return self.root / "private" / private.strip("/").replace("/", "+") / inside[len(private) + 1:]
        for overlaid in OVERLAID:
            if inside.startswith(overlaid + "/"):
                return self.root / "upper" / overlaid.strip("/").replace("/", "+") / inside[len(overlaid) + 1:]
        raise BoxError(f"{inside} is not private to the VM")

    def nsenter(self, *, user: str | None = None, group: str | None = None, caps: Sequence[str] = (),
                no_new_privs: bool = False) -> list[str]:
        """The argv prefix that runs a command in this VM, as `user` (names from the VM's own /etc/passwd)."""
        argv = ["nsenter", "--target", str(self.pid), "--net", "--mount", "--uts", "--wd=/", "--"]
        if user is None and not caps and not no_new_privs:
            return argv
        argv += ["setpriv"]
        if user is not None:
            argv += [f"--reuid={user}", f"--regid={group or user}", "--init-groups"]
        if caps:
            wanted = ",".join(f"+{cap.lower().removeprefix('cap_')}" for cap in caps)
            argv += [f"--inh-caps={wanted}", f"--ambient-caps={wanted}", f"--bounding-set=-all,{wanted}"]
        if no_new_privs:
            argv += ["--no-new-privs"]
        return [*argv, "--"]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment like systemd's (no developer PATH, no virtualenv)."""
        return {"PATH": VM_PATH, "LANG": "C.UTF-8", **(extra or {})}

    def exec(self, argv: Sequence[str], *, timeout_s: float = SETUP_TIMEOUT_S, user: str | None = None,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the VM to completion (root unless `user`)."""
        return subprocess.run(
            [*self.nsenter(user=user), *argv], capture_output=True, text=True, timeout=timeout_s,
            env=self.environment(env), check=False, stdin=subprocess.DEVNULL,
        )

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, **privileges: object,
              ) -> subprocess.Popen[bytes]:
        """Start `argv` in the VM (output appended to `log`); the returned pid is the command's own."""
        with log.open("ab") as out:
            return subprocess.Popen(
                [*self.nsenter(**privileges), *argv],  # type: ignore[arg-type]
                env=self.environment(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def processes(self) -> list[int]:
        """Every process in the VM's network namespace but the holder."""
        mine = os.readlink(f"/proc/{self.pid}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.pid:
                continue
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / "net") == mine:
                    found.append(int(entry.name))
        return found

    def destroy(self) -> None:
        """Power off: kill whatever still runs in it, then the namespaces (the veth goes with them)."""
        if self._holder.poll() is None:
            for pid in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self._holder.kill()
        self._holder.wait(timeout=SETUP_TIMEOUT_S)
        if self._holder.stdout is not None:
            self._holder.stdout.close()
        with contextlib.suppress(BoxError):
            run(["ip", "link", "del", self._link])

    def unplug(self) -> None:
        """Cut the VM's link at once (its side stays, carrying nothing): what a crashed machine's peers see."""
        run(["ip", "link", "set", self._link, "down"])

    def _plug(self, bridge: Bridge) -> None:
        peer = f"{self._link}p"
        run(["ip", "link", "add", self._link, "type", "veth", "peer", "name", peer])
        run(["ip", "link", "set", peer, "netns", str(self.pid)])
        run(["ip", "link", "set", self._link, "master", bridge.name, "up"])
        inside = ["nsenter", "--target", str(self.pid), "--net", "--"]
        run([*inside, "ip", "link", "set", peer, "name", "eth0"])
        run([*inside, "ip", "addr", "add", f"{self.spec.address}/32", "dev", "eth0"])
        run([*inside, "ip", "link", "set", "lo", "up"])
        run([*inside, "ip", "link", "set", "eth0", "up"])
        # Every address is on the segment: the box's services answer ARP on the bridge, the other VMs on theirs.
        run([*inside, "ip", "route", "add", "default", "dev", "eth0"])
        run(["ip", "route", "add", f"{self.spec.address}/32", "dev", bridge.name])

    def _mount(self) -> None:
        script = [f"hostname {shlex.quote(self.spec.host_name)}", "mount -t tmpfs -o mode=0755 tmpfs /run"]
        # Everything below is inside the VM's mount namespace only (sh -e: a failed mount stops it).
        for overlaid in OVERLAID:
            key = overlaid.strip("/").replace("/", "+")
            upper, work = self.root / "upper" / key, self.root / "work" / key
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            script.append(f"mount -t overlay overlay -o lowerdir={overlaid},upperdir={upper},workdir={work} "
                          f"{overlaid}")
        for empty in EMPTY:
            source = self.root / "empty" / empty.strip("/")
            source.mkdir(parents=True, exist_ok=True)
            script.append(f"mount --bind {source} {empty}")
        # Only ever in the VM's overlay (the check fails the script if /etc is not one).
        script += [f"findmnt -n -o FSTYPE /etc | grep -qx overlay && rm -rf {path}" for path in IMAGE_ONLY]
        for private in PRIVATE:
            source = self.path(private)
            source.mkdir(parents=True, exist_ok=True)
            script.append(f"mkdir -p {private} && mount --bind {source} {private}")
        shim = self.root / "systemctl"
        if shim.exists():
            script.append(f"mount --bind {shim} {SYSTEMCTL}")
        script += [f"cat > /etc/hosts <<'EOF'\n{self._hosts()}EOF",
                   f"cat > /etc/hostname <<'EOF'\n{self.spec.host_name}\nEOF"]
        if self.spec.ca_bundle is not None:
            script.append(f"install -m 0644 {self.spec.ca_bundle} {CA_BUNDLE}")
        run(["nsenter", "--target", str(self.pid), "--mount", "--uts", "--", "sh", "-ec", "\n".join(script)])

    def _hosts(self) -> str:
        lines = ["127.0.0.1 localhost", f"{self.ip} {self.spec.host_name}"]
        lines += [f"{address} {name}" for name, address in self.spec.hosts.items()]
        return "\n".join(lines) + "\n"


class Machines:
    """The VMs of one box on one bridge, each with a short unique link name; all destroyed by `close`."""

    def __init__(self, root: Path, bridge: Bridge) -> None:
        self.root = root
        self.bridge = bridge
        self.vms: dict[str, Vm] = {}
        self._count = 0
        self._tag = f"{os.getpid() % 10000:04d}"

    def boot(self, spec: VmSpec, *, systemctl: str | None = None) -> Vm:
        self._count += 1
        link = f"bv{self._tag}{self._count:03d}"
        vm = Vm.boot(spec, self.root / spec.name, self.bridge, link=link, systemctl=systemctl)
        self.vms[spec.name] = vm
        return vm

    def destroy(self, name: str) -> None:
        self.vms.pop(name).destroy()

    def close(self) -> None:
        for name in list(self.vms):
            with contextlib.suppress(Exception):
                self.destroy(name)
        self.bridge.close()

