"""A wire-level fake of Azure Key Vault's secrets data plane on loopback: what an Azure VM reads at boot.

It speaks the documented shapes (learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret,
learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses):

    GET /secrets/{name}[/{version}]?api-version=7.4        Host: {vault}.vault.azure.net (the vault's name)
        `Authorization: Bearer <token for https://vault.azure.net>`
        -> 200 {"value": "...", "id": "https://{vault}.vault.azure.net/secrets/{name}/{version}",
                "attributes": {"enabled": true, "created": unix s, "updated": unix s,
                               "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}, "tags": {}}

Errors are Key Vault's `{"error": {"code", "message"[, "innererror": {"code"}]}}`:
    401 Unauthorized "AKV10000: Request is missing a Bearer or PoP token." without a token, with the challenge
        `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}",
        resource="https://vault.azure.net"` (what azure-identity's challenge policy reads first); with
        `require_token` set and another token, or a JWT whose `aud` is not `https://vault.azure.net`
        (a token minted for another resource), 401 "AKV10022: Invalid audience" too
    400 BadParameter without an api-version, or one this fake does not speak (7.0 .. 7.5)
    403 Forbidden (innererror ForbiddenByRbac) for a refused client: `refuse_first(per_client=1)`, each
        client address's first read, as when the role assignment has not propagated yet
    404 SecretNotFound for an unknown vault, secret or version
    503 ServiceUnavailable (with Retry-After) for `fail_next(n)`
Every request is logged in `accesses` (client address, `vault/name`, status).

    fake = FakeKeyVault()
    fake.put("kv-staging", "agent-token", "s3cret")
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.refusals import Access, DataPlane, bearer, jwt_claims, record

SUFFIX = ".vault.azure.net"
API_VERSIONS = frozenset({"7.0", "7.1", "7.2", "7.3", "7.4", "7.5"})
TENANT = "72f988bf-0000-4000-8000-00000000fa4e"
AUDIENCE = "https://vault.azure.net"
"""The only audience Key Vault accepts (no trailing slash)."""
CHALLENGE = f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'


def vault_error(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return {"error": error}


@dataclass
class Version:
    id: str
    value: str
    created_s: int


class FakeKeyVault(DataPlane):
    """Vaults of secrets (each a list of versions); every method runs on the fake's own loop."""

    def __init__(self, *, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.vaults: dict[str, dict[str, list[Version]]] = {}
        super().__init__()

    # --- test controls -----------------------------------------------------------------------------------

    def put(self, vault: str, name: str, value: str) -> str:
        """Add a version (the new current one); its id (32 hex digits, as Key Vault's)."""
        version = Version(uuid.uuid4().hex, value, int(time.time()))
        self.vaults.setdefault(vault, {}).setdefault(name, []).append(version)
        return version.id

    def served(self, client: str) -> list[str]:
        """`vault/name` of each read by `client` answered 200."""
        return [a.resource for a in self.accesses if a.client == client and a.status == 200]

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/secrets/{name}", self._get)
        app.router.add_get("/secrets/{name}/{version}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        host = request.host.split(":", 1)[0].lower()
        vault = host.removesuffix(SUFFIX) if host.endswith(SUFFIX) else ""
        name, version = request.match_info["name"], request.match_info.get("version", "")
        access = record(self.accesses, request.remote, f"{vault}/{name}", request.headers.get("Authorization", ""))
        response = self._answer(request, access, vault, name, version)
        access.status = response.status
        return response

    def _answer(self, request: web.Request, access: Access, vault: str, name: str, version: str) -> web.Response:
        if request.query.get("api-version") not in API_VERSIONS:
            message = "The api-version query parameter is missing or is not a supported version."
            return web.json_response(vault_error("BadParameter", message), status=400)
        failure = self.refusals.failure()
        if failure is not None:
            return web.json_response(vault_error("ServiceUnavailable", "The service is temporarily unavailable."),
                                     status=failure, headers={"Retry-After": "1"})
        token = bearer(access.authorization)
        if not token:
            return web.json_response(vault_error("Unauthorized", "AKV10000: Request is missing a Bearer or PoP "
                                                 "token."), status=401, headers={"WWW-Authenticate": CHALLENGE})
        audience = (jwt_claims(token) or {}).get("aud", AUDIENCE)
        if (self.require_token is not None and token != self.require_token) or audience != AUDIENCE:
            message = f"AKV10022: Invalid audience. Expected {AUDIENCE}, found: {audience}."
            return web.json_response(vault_error("Unauthorized", message), status=401,
                                     headers={"WWW-Authenticate": CHALLENGE})
        if self.refusals.refuse(access.client):
            message = ("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                       "assignments or role definitions were changed recently, please observe propagation time.\r\n"
                       f"Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nVault: {vault}\r\n")
            return web.json_response(vault_error("Forbidden", message, "ForbiddenByRbac"), status=403)
        versions = self.vaults.get(vault, {}).get(name, [])
        found = versions[-1:] if not version else [v for v in versions if v.id == version]
        if not found:
            message = (f"A secret with (name/id) {name}{'/' + version if version else ''} was not found in this "
                       "key vault.")
            return web.json_response(vault_error("SecretNotFound", message), status=404)
        current = found[0]
        attributes = {"enabled": True, "created": current.created_s, "updated": current.created_s,
                      "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}
        return web.json_response({"value": current.value, "id": f"https://{vault}{SUFFIX}/secrets/{name}/{current.id}",
                                  "attributes": attributes, "tags": {}})
