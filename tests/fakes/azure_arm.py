"""A wire-level fake of Azure Resource Manager on loopback: uniform scale sets' VMs and their NICs.

It speaks the documented shapes (learn.microsoft.com/rest/api/compute/virtual-machine-scale-set-vms/list,
learn.microsoft.com/rest/api/virtualnetwork/network-interfaces/list-virtual-machine-scale-set-network-interfaces):

    GET /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}
        /virtualMachines?api-version=V
        -> 200 {"value": [{"name": "{vmss}_{instanceId}", "instanceId": "3", "id": ".../virtualMachines/3",
                 "properties": {"osProfile": {"computerName": "api000003"}, "provisioningState": "Succeeded",
                 "networkProfile": {"networkInterfaces": [{"id": ".../virtualMachines/3/networkInterfaces/nic"}]}}}],
                "nextLink": "http://fake/...&$skiptoken=N"}                 (no nextLink on the last page)
    GET .../virtualMachineScaleSets/{vmss}/networkInterfaces?api-version=V
        -> 200 {"value": [{"name": "nic", "id": ".../virtualMachines/3/networkInterfaces/nic", "properties":
                 {"primary": true, "virtualMachine": {"id": ".../virtualMachines/3"}, "ipConfigurations": [{"name":
                 "ipconfig", "properties": {"primary": true, "privateIPAddress": "10.1.0.5"}}]}}], "nextLink": ...}

Errors are ARM's `{"error": {"code", "message"}}`: 400 MissingApiVersionParameter, 401 InvalidAuthenticationToken
(with `require_token` set and another bearer token), 404 ResourceNotFound. Faults: `fail_next(n, status,
retry_after, match)` (429 with Retry-After, 500...), `malformed_next(n)`. Every request is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.gce_compute import Fault, Request

BASE = ("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/"
        "virtualMachineScaleSets/{vmss}")


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class Vm:
    instance_id: str
    private_ip: str
    """Empty: no NIC address yet (being created)."""


class FakeArm:
    def __init__(self, *, page_size: int = 100, require_token: str | None = None) -> None:
        self.page_size = page_size
        self.require_token = require_token
        self.scale_sets: dict[tuple[str, str, str], list[Vm]] = {}
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.url = ""
        """This fake's base URL (nextLink is absolute); set on its first request."""

    # --- test controls -----------------------------------------------------------------------------------

    def add_scale_set(self, subscription: str, group: str, name: str, vms: dict[str, str]) -> None:
        """`vms`: instance id -> private IP."""
        self.scale_sets[(subscription, group, name)] = [Vm(i, ip) for i, ip in vms.items()]

    def add_vm(self, subscription: str, group: str, name: str, instance_id: str, private_ip: str) -> None:
        self.scale_sets[(subscription, group, name)].append(Vm(instance_id, private_ip))

    def remove_vm(self, subscription: str, group: str, name: str, instance_id: str) -> None:
        members = self.scale_sets[(subscription, group, name)]
        members[:] = [vm for vm in members if vm.instance_id != instance_id]

    def fail_next(self, count: int, status: int = 500, *, retry_after: str | None = None, match: str = "") -> None:
        self.faults.append(Fault(count, status, retry_after=retry_after, match=match))

    def malformed_next(self, count: int, body: str = '{"value": [', match: str = "") -> None:
        self.faults.append(Fault(count, 200, body=body, match=match))

    def close(self) -> None:
        return None

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fault])
        app.router.add_get(BASE + "/virtualMachines", self._vms)
        app.router.add_get(BASE + "/networkInterfaces", self._nics)
        return app

    @web.middleware
    async def _record_and_fault(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        self.url = f"{request.scheme}://{request.host}"
        record = Request(request.method, request.path, dict(request.query), request.headers.get("Authorization", ""),
                         time.time())
        self.requests.append(record)
        fault = next((f for f in self.faults if f.remaining > 0 and f.match in request.path_qs), None)
        response: web.StreamResponse
        if fault is not None:
            fault.remaining -= 1
            if fault.body is not None:
                response = web.Response(status=fault.status, text=fault.body, content_type="application/json")
            else:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                code = "TooManyRequests" if fault.status == 429 else "InternalServerError"
                response = web.json_response(arm_error(code, "injected fault"), status=fault.status, headers=headers)
        elif self.require_token and record.authorization != f"Bearer {self.require_token}":
            response = web.json_response(arm_error("InvalidAuthenticationToken", "The access token is invalid."),
                                         status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        elif not request.query.get("api-version"):
            response = web.json_response(arm_error("MissingApiVersionParameter", "The api-version query parameter "
                                                   "(?api-version=) is required for all requests."), status=400)
        else:
            response = await handler(request)
        record.status = response.status
        return response

    def _members(self, request: web.Request) -> list[Vm] | None:
        info = request.match_info
        return self.scale_sets.get((info["subscription"], info["group"], info["vmss"]))

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        offset = int(request.query.get("$skiptoken") or 0)
        body: dict[str, Any] = {"value": items[offset:offset + self.page_size]}
        if offset + self.page_size < len(items):
            version = request.query["api-version"]
            body["nextLink"] = f"{self.url}{request.path}?api-version={version}&$skiptoken={offset + self.page_size}"
        return web.json_response(body)

    def _missing(self, request: web.Request) -> web.Response:
        name = request.match_info["vmss"]
        message = f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' was not found."
        return web.json_response(arm_error("ResourceNotFound", message), status=404)

    async def _vms(self, request: web.Request) -> web.Response:
        members = self._members(request)
        if members is None:
            return self._missing(request)
        base, name = request.path.removesuffix("/virtualMachines"), request.match_info["vmss"]
        return self._page(request, [self._vm(base, name, vm) for vm in members])

    async def _nics(self, request: web.Request) -> web.Response:
        members = self._members(request)
        if members is None:
            return self._missing(request)
        base = request.path.removesuffix("/networkInterfaces")
        return self._page(request, [self._nic(base, vm) for vm in members if vm.private_ip])

    def _vm(self, base: str, name: str, vm: Vm) -> dict[str, Any]:
        ident = f"{base}/virtualMachines/{vm.instance_id}"
        return {"name": f"{name}_{vm.instance_id}", "instanceId": vm.instance_id, "id": ident,
                "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines", "location": "centralus",
                "properties": {"osProfile": {"computerName": f"api{int(vm.instance_id):06d}"},
                               "provisioningState": "Succeeded" if vm.private_ip else "Creating",
                               "networkProfile": {"networkInterfaces": [{"id": f"{ident}/networkInterfaces/nic"}]}}}

    def _nic(self, base: str, vm: Vm) -> dict[str, Any]:
        ident = f"{base}/virtualMachines/{vm.instance_id}"
        configuration = {"name": "ipconfig", "properties": {"primary": True, "privateIPAddress": vm.private_ip,
                                                            "privateIPAllocationMethod": "Dynamic"}}
        return {"name": "nic", "id": f"{ident}/networkInterfaces/nic",
                "properties": {"primary": True, "virtualMachine": {"id": ident},
                               "ipConfigurations": [configuration]}}
