"""A wire-level fake of Secret Manager on loopback: what a VM's boot script reads with its service account.

It speaks the documented shapes (cloud.google.com/secret-manager/docs/reference/rest/v1/
projects.secrets.versions/access, .../SecretPayload):

    GET /v1/projects/{project}/secrets/{secret}/versions/{version}:access     `Authorization: Bearer <token>`
        {version}: `latest` or a version number
        -> 200 {"name": "projects/{number}/secrets/{secret}/versions/{n}", "payload": {"data": base64(value)}}
           (the real service adds `payload.dataCrc32c`; nothing of ours checks it and no CRC32C library is a
           dependency, so the fake leaves it out: a client that requires it fails here, visibly)

Errors are Google's JSON error shape `{"error": {"code", "message", "status", "details": [ErrorInfo]}}`:
401 UNAUTHENTICATED without a bearer token (or, with `require_token` set, another one), 403 PERMISSION_DENIED
for a refused access (`refuse_first(per_client=1)`: each client address's first access, as when the IAM grant
has not propagated yet), 404 NOT_FOUND for an unknown secret or version, 503 UNAVAILABLE for `fail_next(n)`.
Every access is logged in `accesses` (client address, `project/secret`, status), so a test can assert
"every VM was refused once, then served".

    fake = FakeSecretManager()
    fake.put("proj", "agent-token", "s3cret")        # version 1 (a second put adds version 2, the latest)
    fake.refuse_first(per_client=1)
    with threaded.serve(fake) as handle: ...         # or mounted by tests/box/gateway.py on its TLS server
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from tests.fakes.refusals import Access, DataPlane, bearer, record

ROUTE = "/v1/projects/{project}/secrets/{secret}/versions/{version}:access"
PROJECT_NUMBER = "123456789012"
"""The fake's project number: Secret Manager names versions by project number, not id."""


def google_error(code: int, status: str, message: str, *, reason: str, resource: str = "") -> dict[str, Any]:
    """The JSON error of Google's newer APIs (google.rpc.Status with an ErrorInfo detail)."""
    info: dict[str, Any] = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                            "domain": "secretmanager.googleapis.com"}
    if resource:
        info["metadata"] = {"permission": "secretmanager.versions.access", "resource": resource}
    return {"error": {"code": code, "message": message, "status": status, "details": [info]}}


class FakeSecretManager(DataPlane):
    """Secrets by (project, secret id), each a list of versions; every method runs on the fake's loop."""

    def __init__(self, *, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.secrets: dict[tuple[str, str], list[bytes]] = {}
        super().__init__()

    # --- test controls -----------------------------------------------------------------------------------

    def put(self, project: str, secret_id: str, value: str | bytes) -> int:
        """Add a version (the new latest); its number."""
        data = value.encode() if isinstance(value, str) else value
        versions = self.secrets.setdefault((project, secret_id), [])
        versions.append(data)
        return len(versions)

    def served(self, client: str) -> list[str]:
        """`project/secret` of each access by `client` answered 200."""
        return [a.resource for a in self.accesses if a.client == client and a.status == 200]

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ROUTE, self._access)
        return app

    async def _access(self, request: web.Request) -> web.Response:
        info = request.match_info
        project, secret, version = info["project"], info["secret"], info["version"]
        access = record(self.accesses, request.remote, f"{project}/{secret}", request.headers.get("Authorization", ""))
        response = self._answer(access, project, secret, version)
        access.status = response.status
        return response

    def _answer(self, access: Access, project: str, secret: str, version: str) -> web.Response:
        failure = self.refusals.failure()
        if failure is not None:
            body = google_error(failure, "UNAVAILABLE", "The service is currently unavailable.", reason="UNAVAILABLE")
            return web.json_response(body, status=failure)
        token = bearer(access.authorization)
        if not token or (self.require_token is not None and token != self.require_token):
            message = ("Request is missing required authentication credential. Expected OAuth 2 access token, "
                       "login cookie or other valid authentication credential.")
            return web.json_response(google_error(401, "UNAUTHENTICATED", message, reason="CREDENTIALS_MISSING"),
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        resource = f"projects/{project}/secrets/{secret}/versions/{version}"
        if self.refusals.refuse(access.client):
            message = (f"Permission 'secretmanager.versions.access' denied for resource '{resource}' "
                       "(or it may not exist).")
            body = google_error(403, "PERMISSION_DENIED", message, reason="IAM_PERMISSION_DENIED", resource=resource)
            return web.json_response(body, status=403)
        versions = self.secrets.get((project, secret), [])
        number = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
        if not 0 < number <= len(versions):
            message = (f"Secret [projects/{PROJECT_NUMBER}/secrets/{secret}] not found or has no versions."
                       if version == "latest" or not versions else
                       f"Secret Version [projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{version}] not found.")
            return web.json_response(google_error(404, "NOT_FOUND", message, reason="NOT_FOUND"), status=404)
        data = versions[number - 1]
        return web.json_response({
            "name": f"projects/{PROJECT_NUMBER}/secrets/{secret}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode()},
        })

