"""The cloud's public HTTPS endpoints on one address of the box: one TLS server, dispatching on `Host`.

A VM in the box resolves every cloud name it calls (its /etc/hosts, written by the harness) to the gateway's
address; the gateway presents the box CA's leaf (tests/box/ca.py, SANs for all those names) and hands each
request to the fake of the service named in its `Host` header:

    secretmanager.googleapis.com   FakeSecretManager   tests/fakes/gcp_secrets.py
    storage.googleapis.com         FakeStorage         tests/fakes/gcs.py
    compute.googleapis.com         FakeCompute         tests/fakes/gce_compute.py (its `/compute/v1/...` routes)
    oauth2.googleapis.com          FakeCompute         its `POST /token` (a service-account key's token_uri)
    management.azure.com           FakeArm             tests/fakes/azure_arm.py
    <vault>.vault.azure.net        FakeKeyVault        tests/fakes/key_vault.py (the vault from the Host)
    <account>.blob.core.windows.net  FakeBlob          tests/fakes/azure_blob.py (the account from the Host)

Any other host gets 404 with a line naming it (login.microsoftonline.com has no fake yet: the VMs get their
tokens from the metadata server and IMDS, tests/box/linklocal.py). Every fake is the ordinary one, each
testable alone; the gateway only mounts them. Use:

    ca = BoxCa.create(tmp / "ca")
    gateway = CloudGateway(ca, compute=FakeCompute(project="proj"))      # the others default to new fakes
    # (or positionally, any order: CloudGateway(FakeSecretManager(), FakeCompute(...), ca))
    with gateway.serve("10.99.0.1") as cloud:                            # port 443 (root), or port=...
        cloud.secrets.put("proj", "agent-token", "...")                  # each fake through a threaded Handle
        cloud.secrets.refuse_first(per_client=1)
        cloud.hosts_lines(vaults=["kv-staging"], accounts=["stdrainctl"])  # /etc/hosts lines for a VM
        # curl --cacert <ca.bundle_path> https://secretmanager.googleapis.com/v1/... from a VM

The fakes see the VM's own address as the caller (request.remote), so per-client refusals and the access
logs tell VMs apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web

from tests.box.ca import BoxCa
from tests.fakes import threaded
from tests.fakes.azure_arm import FakeArm
from tests.fakes.azure_blob import FakeBlob
from tests.fakes.gce_compute import FakeCompute
from tests.fakes.gcp_secrets import FakeSecretManager
from tests.fakes.gcs import FakeStorage
from tests.fakes.key_vault import FakeKeyVault
from tests.fakes.threaded import Fake, Handle

HTTPS_PORT = 443
FIXED_HOSTS = ("secretmanager.googleapis.com", "storage.googleapis.com", "compute.googleapis.com",
               "oauth2.googleapis.com", "management.azure.com")
"""The names a VM's /etc/hosts maps to the gateway, beside one line per vault and storage account."""
PARTS: dict[str, type] = {"secrets": FakeSecretManager, "storage": FakeStorage, "vault": FakeKeyVault,
                          "blob": FakeBlob, "compute": FakeCompute, "arm": FakeArm}


T = TypeVar("T")


def _pick(kind: type[T], keyword: T | None, parts: tuple[object, ...], default: Callable[[], T] | None) -> T:
    """The part of type `kind`: by keyword, else positional, else a new default one."""
    found = keyword or next((part for part in parts if isinstance(part, kind)), None)
    if found is None:
        if default is None:
            raise TypeError(f"CloudGateway needs a {kind.__name__}")
        found = default()
    return found


@dataclass
class RunningGateway:
    """A served gateway: its address and a handle on each fake (calls run on the server's loop)."""

    address: str
    port: int
    url: str
    secrets: Handle[FakeSecretManager]
    storage: Handle[FakeStorage]
    vault: Handle[FakeKeyVault]
    blob: Handle[FakeBlob]
    compute: Handle[FakeCompute]
    arm: Handle[FakeArm]

    def hosts_lines(self, *, vaults: Iterable[str] = (), accounts: Iterable[str] = ()) -> list[str]:
        """`/etc/hosts` lines sending a VM's cloud calls here (hosts files have no wildcards: name each vault
        and storage account)."""
        names = [*FIXED_HOSTS, *(f"{v}.vault.azure.net" for v in vaults),
                 *(f"{a}.blob.core.windows.net" for a in accounts)]
        return [f"{self.address} {name}" for name in names]

    def curl_resolve(self, *, vaults: Iterable[str] = (), accounts: Iterable[str] = ()) -> list[str]:
        """curl arguments for a run outside a VM (tests): `--resolve name:port:address` for each name."""
        lines = self.hosts_lines(vaults=vaults, accounts=accounts)
        return [arg for line in lines for arg in ("--resolve", f"{line.split()[1]}:{self.port}:{self.address}")]


class CloudGateway:
    """The fakes behind one TLS listener (see the module docstring); `serve` runs it in a thread."""

    def __init__(self, *parts: BoxCa | Fake, ca: BoxCa | None = None, secrets: FakeSecretManager | None = None,
                 storage: FakeStorage | None = None, vault: FakeKeyVault | None = None, blob: FakeBlob | None = None,
                 compute: FakeCompute | None = None, arm: FakeArm | None = None) -> None:
        """The CA and the fakes, by keyword or positionally in any order (each known by its type); a fake not
        given is a new empty one."""
        unknown = [part for part in parts if not isinstance(part, (BoxCa, *PARTS.values()))]
        if unknown:
            raise TypeError(f"CloudGateway takes a BoxCa and the fakes {sorted(PARTS)}, not {unknown}")
        self.ca = _pick(BoxCa, ca, parts, None)
        self.secrets = _pick(FakeSecretManager, secrets, parts, FakeSecretManager)
        self.storage = _pick(FakeStorage, storage, parts, FakeStorage)
        self.vault = _pick(FakeKeyVault, vault, parts, FakeKeyVault)
        self.blob = _pick(FakeBlob, blob, parts, FakeBlob)
        self.compute = _pick(FakeCompute, compute, parts, FakeCompute)
        self.arm = _pick(FakeArm, arm, parts, FakeArm)
        self.port = HTTPS_PORT
        self.unknown_hosts: list[str] = []
        """Host headers no fake answered for (a name the harness forgot, a cloud API not faked)."""

    def app(self) -> web.Application:
        """One application: a sub-application per cloud name (aiohttp's `add_domain`), else a 404."""
        root = web.Application()
        mounts = [("secretmanager.googleapis.com", self.secrets.app), ("storage.googleapis.com", self.storage.app),
                  ("compute.googleapis.com", self.compute.app), ("oauth2.googleapis.com", self.compute.app),
                  ("management.azure.com", self.arm.app), ("*.vault.azure.net", self.vault.app),
                  ("*.blob.core.windows.net", self.blob.app)]
        for domain, build in mounts:
            root.add_domain(domain, build())
            if self.port != HTTPS_PORT:  # clients then send `Host: name:port`
                root.add_domain(f"{domain}:{self.port}", build())
        root.router.add_route("*", "/{tail:.*}", self._unknown)
        return root

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_hosts.append(request.host)
        return web.Response(status=404, text=f"box gateway: no fake answers for host {request.host!r}\n")

    def close(self) -> None:
        for fake in (self.secrets, self.storage, self.vault, self.blob, self.compute, self.arm):
            fake.close()

    @contextlib.contextmanager
    def serve(self, address: str, port: int = HTTPS_PORT) -> Iterator[RunningGateway]:
        """Listen on `address`:`port` (TLS, the CA's leaf) on a loop in a background thread; stopped on exit."""
        if port == 0:
            raise ValueError("the gateway needs a known port: clients put it in the Host header")
        self.port = port
        with threaded.serve(self, host=address, port=port, name="box-gateway",
                            ssl_context=self.ca.server_context()) as handle:
            yield RunningGateway(
                address, port, f"https://{address}:{port}",
                threaded.sibling(handle, self.secrets), threaded.sibling(handle, self.storage),
                threaded.sibling(handle, self.vault), threaded.sibling(handle, self.blob),
                threaded.sibling(handle, self.compute), threaded.sibling(handle, self.arm),
            )
