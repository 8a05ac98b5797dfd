"""A wire-level fake of Azure Blob Storage's Get Blob on loopback: the artifact blobs an Azure VM downloads.

It speaks the documented shapes (learn.microsoft.com/rest/api/storageservices/get-blob,
.../authorize-with-azure-active-directory, .../blob-service-error-codes, .../status-and-error-codes2):

    GET /{container}/{blob}                  Host: {account}.blob.core.windows.net (the storage account)
        `x-ms-version: 2017-11-09 or later` (OAuth needs it), `Authorization: Bearer <token for
        https://storage.azure.com/>`
        -> 200 the blob's bytes; `Content-Length`, `Content-Type`, `Content-MD5`, `ETag`, `Last-Modified`,
           `x-ms-blob-type: BlockBlob`, `x-ms-version`, `x-ms-request-id`, `x-ms-creation-time`

Errors are the storage services' XML, `<?xml ...?><Error><Code>C</Code><Message>M\nRequestId:..\nTime:..
</Message></Error>` with `x-ms-error-code: C`:
    409 PublicAccessNotPermitted without a token (the stack's accounts disallow public blob access)
    400 MissingRequiredHeader without `x-ms-version`, 400 InvalidHeaderValue for a version before OAuth
    401 InvalidAuthenticationInfo with `require_token` set and another token, or a JWT whose `aud` is not
        storage's (a token minted for another resource), with the bearer challenge
    403 AuthorizationPermissionMismatch for a refused client (`refuse_first(per_client)`, a role assignment
        not yet propagated)
    404 ContainerNotFound, 404 BlobNotFound
    503 ServerBusy for `fail_next(n)`
Every request is logged in `accesses` (client address, `account/container/blob`, status).

    fake = FakeBlob()
    fake.put("stdrainctlstaging", "artifacts", "drainctl/wheelhouse-0123456789abcdef.tar.gz", data)
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime
from email.utils import formatdate
from urllib.parse import unquote
from xml.sax.saxutils import escape

from aiohttp import web

from tests.fakes.refusals import Access, DataPlane, bearer, jwt_claims, record

SUFFIX = ".blob.core.windows.net"
OAUTH_MIN_VERSION = "2017-11-09"
TENANT = "72f988bf-0000-4000-8000-00000000fa4e"
AUDIENCES = ("https://storage.azure.com/", "https://storage.azure.com")
"""Audiences any storage account accepts (besides its own `https://<account>.blob.core.windows.net`)."""
CHALLENGE = (f"Bearer authorization_uri=https://login.microsoftonline.com/{TENANT}/oauth2/authorize "
             "resource_id=https://storage.azure.com")


class FakeBlob(DataPlane):
    """Storage accounts of containers of blobs; every method runs on the fake's own loop."""

    def __init__(self, *, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.accounts: dict[str, dict[str, dict[str, tuple[bytes, float]]]] = {}
        """account -> container -> blob name -> (data, creation unix time)."""
        super().__init__()

    # --- test controls -----------------------------------------------------------------------------------

    def put(self, account: str, container: str, blob: str, data: bytes) -> None:
        self.accounts.setdefault(account, {}).setdefault(container, {})[blob] = (data, time.time())

    def add_container(self, account: str, container: str) -> None:
        self.accounts.setdefault(account, {}).setdefault(container, {})

    def downloads(self, client: str | None = None) -> list[Access]:
        """Downloads answered 200 (by `client`, if given)."""
        return [a for a in self.accesses if a.status == 200 and client in (None, a.client)]

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{container}/{blob:.+}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.StreamResponse:
        host = request.host.split(":", 1)[0].lower()
        account = host.removesuffix(SUFFIX) if host.endswith(SUFFIX) else ""
        container, _, blob = request.raw_path.split("?", 1)[0].lstrip("/").partition("/")
        container, blob = unquote(container), unquote(blob)
        access = record(self.accesses, request.remote, f"{account}/{container}/{blob}",
                        request.headers.get("Authorization", ""))
        response = self._answer(request, access, account, container, blob)
        access.status = response.status
        return response

    def _answer(self, request: web.Request, access: Access, account: str, container: str,
                blob: str) -> web.Response:
        version = request.headers.get("x-ms-version", "")
        failure = self.refusals.failure()
        if failure is not None:
            return _error(failure, "ServerBusy", "The server is currently unable to receive requests. Please retry "
                          "your request.", version)
        token = bearer(access.authorization)
        if not token:
            return _error(409, "PublicAccessNotPermitted", "Public access is not permitted on this storage account.",
                          version)
        if not version:
            return _error(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not "
                          "specified.", version, detail="<HeaderName>x-ms-version</HeaderName>")
        if version < OAUTH_MIN_VERSION:
            return _error(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct "
                          "format.", version, detail="<HeaderName>x-ms-version</HeaderName>"
                          f"<HeaderValue>{escape(version)}</HeaderValue>")
        audience = (jwt_claims(token) or {}).get("aud", AUDIENCES[0])
        if (self.require_token is not None and token != self.require_token) or not _storage_audience(audience,
                                                                                                     account):
            response = _error(401, "InvalidAuthenticationInfo", "Server failed to authenticate the request. Please "
                              "refer to the information in the www-authenticate header.", version)
            response.headers["WWW-Authenticate"] = CHALLENGE
            return response
        if self.refusals.refuse(access.client):
            return _error(403, "AuthorizationPermissionMismatch", "This request is not authorized to perform this "
                          "operation using this permission.", version)
        blobs = self.accounts.get(account, {}).get(container)
        if blobs is None:
            return _error(404, "ContainerNotFound", "The specified container does not exist.", version)
        if blob not in blobs:
            return _error(404, "BlobNotFound", "The specified blob does not exist.", version)
        data, created = blobs[blob]
        headers = {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
                   "ETag": f'"0x{hashlib.sha256(data).hexdigest()[:15].upper()}"',
                   "Last-Modified": formatdate(created, usegmt=True), "x-ms-blob-type": "BlockBlob",
                   "x-ms-creation-time": formatdate(created, usegmt=True), "x-ms-server-encrypted": "true",
                   "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available", "Accept-Ranges": "bytes",
                   **_common(version)}
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)


def _storage_audience(audience: str, account: str) -> bool:
    return audience in AUDIENCES or audience.rstrip("/") == f"https://{account}{SUFFIX}"


def _common(version: str) -> dict[str, str]:
    headers = {"x-ms-request-id": str(uuid.uuid4())}
    if version:
        headers["x-ms-version"] = version
    return headers


def _error(status: int, code: str, message: str, version: str, *, detail: str = "") -> web.Response:
    headers = _common(version)
    when = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "0Z")
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
            f"RequestId:{headers['x-ms-request-id']}\nTime:{when}</Message>{detail}</Error>")
    return web.Response(status=status, text=body, content_type="application/xml",
                        headers={"x-ms-error-code": code, **headers})
