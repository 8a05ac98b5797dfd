"""A network namespace for one process, joined to ours by a veth pair, and a partition that drops its packets
to one port: the separate host and the network fault of DESIGN.md §7 (root only; `ip netns`, veth, `nft`).

    with namespace("a") as ns:                # e.g. 10.213.1.2 inside, 10.213.1.1 on our side
        argv = ns.exec_argv(["drainctl", "run", ...])
        ns.cut(5432)                          # packets to and from our port 5432 are dropped: half-open
        ns.heal()

What runs inside reaches our loopback services at `ns.host_ip` (the same port; a DNAT to 127.0.0.1 on our
side of the veth, which `route_localnet` allows), and we reach it at `ns.inside_ip`. A cut drops packets where
they arrive, on both ends of the link (ingress of the namespace, and ingress of our side): neither TCP stack
sees an error or a reset, so open connections stay half-open and new ones hang in SYN_SENT, as when a
network path dies. Everything is removed on exit (the namespace, the veth with it, our nft tables).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


def _run(*argv: str, stdin: str | None = None) -> None:
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")


@dataclass(frozen=True)
class Namespace:
    name: str
    """At most 10 characters (the veth ends are NAME-h and NAME-n; an interface name has at most 15)."""
    subnet: int
    """The third octet of 10.213.N.0/30."""

    @property
    def host_ip(self) -> str:
        """Our side of the veth: what the namespace uses to reach our 127.0.0.1 services."""
        return f"10.213.{self.subnet}.1"

    @property
    def inside_ip(self) -> str:
        return f"10.213.{self.subnet}.2"

    @property
    def network(self) -> str:
        return f"10.213.{self.subnet}.0/30"

    @property
    def _host_dev(self) -> str:
        return f"{self.name}-h"

    @property
    def _table(self) -> str:
        return f"drainctl_{self.name}"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the namespace (`ip netns exec` execs it: the pid is the program's own)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self, port: int) -> None:
        """Drop every packet between the namespace and our `port`, both ways, as it arrives."""
        inside = (f"table inet {self._table}_cut {{ chain in {{ type filter hook prerouting priority -300; "
                  f"ip saddr {self.host_ip} tcp sport {port} drop; }}; }}")
        outside = (f"table inet {self._table}_cut {{ chain in {{ type filter hook prerouting priority -300; "
                   f'iifname "{self._host_dev}" tcp dport {port} drop; }}; }}')
        _run("ip", "netns", "exec", self.name, "nft", "-f", "-", stdin=inside)
        _run("nft", "-f", "-", stdin=outside)

    def heal(self) -> None:
        """Remove the cut (both ends)."""
        _run("ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", f"{self._table}_cut")
        _run("nft", "delete", "table", "inet", f"{self._table}_cut")

    def _create(self) -> None:
        dev_in = f"{self.name}-n"
        _run("ip", "netns", "add", self.name)
        _run("ip", "link", "add", self._host_dev, "type", "veth", "peer", "name", dev_in, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self._host_dev)
        _run("ip", "link", "set", self._host_dev, "up")
        _run("ip", "-n", self.name, "addr", "add", f"{self.inside_ip}/30", "dev", dev_in)
        _run("ip", "-n", self.name, "link", "set", dev_in, "up")
        _run("ip", "-n", self.name, "link", "set", "lo", "up")
        _run("sysctl", "-qw", f"net.ipv4.conf.{self._host_dev}.route_localnet=1")
        nat = (f"table ip {self._table}_nat {{ chain pre {{ type nat hook prerouting priority dstnat; "
               f'iifname "{self._host_dev}" ip daddr {self.host_ip} dnat to 127.0.0.1; }}; }}')
        _run("nft", "-f", "-", stdin=nat)

    def _remove(self) -> None:
        for argv in (["nft", "delete", "table", "inet", f"{self._table}_cut"],
                     ["nft", "delete", "table", "ip", f"{self._table}_nat"],
                     ["ip", "link", "del", self._host_dev], ["ip", "netns", "del", self.name]):
            with contextlib.suppress(RuntimeError):
                _run(*argv)


def _free_subnet() -> int:
    """A third octet N whose 10.213.N.0/30 no interface of ours uses (another test run's namespace may)."""
    listed = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True,
                            timeout=30).stdout
    return next(n for n in range(1, 255) if f" 10.213.{n}." not in listed)


@contextlib.contextmanager
def namespace(tag: str) -> Iterator[Namespace]:
    """A fresh namespace named by `tag` (a letter or two) and our pid, on a 10.213.N.0/30 no one else uses."""
    made = Namespace(f"dc{os.getpid()}{tag}"[:10], _free_subnet())
    made._remove()
    try:
        made._create()
        yield made
    finally:
        made._remove()
