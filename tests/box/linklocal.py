"""The link-local metadata address of the box: one HTTP server at 169.254.169.254:80 for every VM of both clouds.

On a real VM, `http://169.254.169.254` (and `metadata.google.internal`, which resolves to it) answers about
the VM asking. In the box every VM's namespace routes that address to one server in the host namespace, so
this server tells VMs apart by the request's source address (each VM has its own, on the box's bridge) and
answers from that VM's own fake:

    GCE VMs    FakeMetadata (tests/fakes/gce_metadata.py): `/computeMetadata/v1/instance/...` (name, zone,
               hostname, network-interfaces/0/ip, service-accounts/default/token and /email, preempted,
               maintenance-event with hanging GETs), `/computeMetadata/v1/project/...`
    Azure VMs  FakeImds (tests/fakes/azure_imds.py): `/metadata/instance[/compute[/<leaf>]]` (name, userData...),
               `/metadata/identity/oauth2/token` (its identities' client ids; each token an unsigned JWT whose
               `aud` is the resource asked for, which Key Vault and Blob check), `/metadata/scheduledevents`:
               as on Azure, the VMs of one scale set (`scale_set=`) see ONE Scheduled Events document (the
               events of all of them; each agent picks its own by name, any may approve): schedule on
               `running.scale_set_events(name)`; a VM outside a scale set has its own, on its fake

A request from an address with no VM, or for the other cloud's paths, gets 404 with a line saying so.
169.254.169.254 can only be bound once it is on an interface of the host (the harness adds it to the bridge
or to `lo`), so the bind address is a parameter: the tests use 127.x.y.z and `curl --interface`.

    link = LinkLocal()
    with link.serve("169.254.169.254") as running:                # port 80 (root), or port=0 in tests
        gce = running.add_gcp_vm("10.99.0.11", name="api-abcd", zone="europe-west1-b", project="proj",
                                 email="api-fleet@proj.iam.gserviceaccount.com")     # Handle[FakeMetadata]
        gce.set("maintenance-event", "TERMINATE_ON_HOST_MAINTENANCE")
        az = running.add_azure_vm("10.99.0.21", name="api_3", computer_name="api000003", user_data=b64,
                                  custom_data=b64, client_ids=["<fleet identity client id>"],
                                  scale_set="api")                                           # Handle[FakeImds]
        running.scale_set_events("api").schedule("Terminate", ["api_3"], not_before_s=60)   # with scale_set="api"
        running.remove_vm("10.99.0.11")                            # the VM is gone: 404 from now on

`LinkLocal.add_gcp_vm` / `add_azure_vm` (on the object itself, before or without serving) return the fake;
on a `RunningLinkLocal` they return a threaded Handle on it, since the fake then lives on the server's loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes import threaded
from tests.fakes.azure_imds import FakeImds
from tests.fakes.gce_metadata import FakeMetadata
from tests.fakes.threaded import Handle

METADATA_ADDRESS = "169.254.169.254"
HTTP_PORT = 80
EVENT_HANDLERS = frozenset({"_get", "_post"})
"""FakeImds's Scheduled Events handlers: shared by the VMs of a scale set."""


class LinkLocal:
    """Per-VM metadata fakes behind one listener; every method runs on the server's loop once served."""

    def __init__(self) -> None:
        self.vms: dict[str, FakeMetadata | FakeImds] = {}
        """Source address -> that VM's fake."""
        self.scale_sets: dict[str, FakeImds] = {}
        """Scale set name -> the FakeImds holding its VMs' shared Scheduled Events document."""
        self.strangers: list[tuple[str, str]] = []
        """(source address, path) of requests no VM's fake answered (a VM not added, the other cloud's path)."""

    # --- test controls -----------------------------------------------------------------------------------

    def add_gcp_vm(self, address: str, name: str, zone: str, project: str, email: str,
                   ip: str | None = None, attributes: dict[str, str] | None = None) -> FakeMetadata:
        """A GCE VM calling from `address` (its primary internal IP unless `ip` says otherwise); `attributes`:
        its instance metadata (`instance/attributes/<key>`)."""
        fake = FakeMetadata(name=name, zone=zone, project=project, email=email, ip=ip or address,
                            attributes=attributes)
        self.vms[address] = fake
        return fake

    def add_azure_vm(self, address: str, name: str, computer_name: str, user_data: str = "",
                     custom_data: str = "", client_ids: list[str] | None = None, **compute: Any) -> FakeImds:
        """An Azure VM calling from `address`; `name` is Azure's (`<scale set>_<instance id>`), `user_data` and
        `custom_data` base64 as ARM takes them; `compute`: FakeImds's other keywords (scale_set, resource_group,
        subscription, location)."""
        fake = FakeImds(name=name, computer_name=computer_name, user_data=user_data, custom_data=custom_data,
                        client_ids=client_ids, private_ip=address, **compute)
        fake.jwt_tokens = True  # Key Vault and Blob then check each token's audience
        self.vms[address] = fake
        if compute.get("scale_set"):
            self.scale_set_events(compute["scale_set"])
        return fake

    def scale_set_events(self, scale_set: str) -> FakeImds:
        """The Scheduled Events document the VMs of `scale_set` share (created on first use)."""
        if scale_set not in self.scale_sets:
            self.scale_sets[scale_set] = FakeImds(scale_set=scale_set)
        return self.scale_sets[scale_set]

    def fake_for(self, request: web.Request, kind: type, handler: str) -> FakeMetadata | FakeImds | None:
        """The fake that answers `handler` for the caller: its own, or its scale set's events document."""
        fake = self.vms.get(request.remote or "")
        if not isinstance(fake, kind):
            return None
        scale_set = fake.compute.get("vmScaleSetName") if isinstance(fake, FakeImds) else ""
        if handler in EVENT_HANDLERS and scale_set:
            return self.scale_set_events(scale_set)
        return fake

    def remove_vm(self, address: str) -> None:
        fake = self.vms.pop(address, None)
        if fake is not None:
            fake.close()

    def close(self) -> None:
        for fake in [*self.vms.values(), *self.scale_sets.values()]:
            fake.close()

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """Both fakes' routes (built by their own `app`), each handler dispatched to the caller's fake."""
        root = web.Application()
        FakeMetadata.app(_Dispatch(self, FakeMetadata), into=root)  # type: ignore[arg-type]
        FakeImds.app(_Dispatch(self, FakeImds), into=root)  # type: ignore[arg-type]
        root.router.add_route("*", "/{tail:.*}", self._stranger)
        return root

    async def _stranger(self, request: web.Request) -> web.Response:
        source = request.remote or ""
        self.strangers.append((source, request.path))
        fake = self.vms.get(source)
        why = "no VM has this address" if fake is None else f"not a path of {type(fake).__name__}"
        return web.Response(status=404, text=f"box link-local: {request.path} from {source}: {why}\n")

    @contextlib.contextmanager
    def serve(self, address: str = METADATA_ADDRESS, port: int = HTTP_PORT) -> Iterator[RunningLinkLocal]:
        """Listen on `address`:`port` (0: any free port) on a loop in a background thread; stopped on exit."""
        with threaded.serve(self, host=address, port=port, name="box-linklocal") as handle:
            yield RunningLinkLocal(handle)


class _Dispatch:
    """Stands in for a fake while its `app` is built: each handler it hands out (`self._get`...) calls that
    handler of the fake of the VM the request comes from."""

    def __init__(self, link: LinkLocal, kind: type) -> None:
        self._link = link
        self._kind = kind

    def __getattr__(self, name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            fake = self._link.fake_for(request, self._kind, name)
            if fake is None:
                return await self._link._stranger(request)
            handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = getattr(fake, name)
            return await handler(request)

        dispatch.__name__ = name
        return dispatch


@dataclass
class RunningLinkLocal:
    """A served LinkLocal, driven from the test's thread."""

    handle: Handle[LinkLocal]

    @property
    def url(self) -> str:
        return self.handle.url

    def add_gcp_vm(self, address: str, name: str, zone: str, project: str, email: str,
                   ip: str | None = None, attributes: dict[str, str] | None = None) -> Handle[FakeMetadata]:
        fake = self.handle.call(lambda link: link.add_gcp_vm(address, name, zone, project, email, ip, attributes))
        return threaded.sibling(self.handle, fake)

    def scale_set_events(self, scale_set: str) -> Handle[FakeImds]:
        """The shared Scheduled Events of `scale_set`'s VMs: `.schedule(...)`, `.approved(event_id)`..."""
        return threaded.sibling(self.handle, self.handle.call(lambda link: link.scale_set_events(scale_set)))

    def add_azure_vm(self, address: str, name: str, computer_name: str, user_data: str = "",
                     custom_data: str = "", client_ids: list[str] | None = None, **compute: Any) -> Handle[FakeImds]:
        fake = self.handle.call(lambda link: link.add_azure_vm(address, name, computer_name, user_data,
                                                               custom_data, client_ids, **compute))
        return threaded.sibling(self.handle, fake)

    def remove_vm(self, address: str) -> None:
        self.handle.call(lambda link: link.remove_vm(address))

    def vm(self, address: str) -> Handle[Any]:
        """A handle on the fake of the VM at `address` (KeyError if none)."""
        return threaded.sibling(self.handle, self.handle.call(lambda link: link.vms[address]))

    @property
    def strangers(self) -> list[tuple[str, str]]:
        return list(self.handle.strangers)
