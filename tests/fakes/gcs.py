"""A wire-level fake of the Cloud Storage JSON API on loopback: the artifact objects a VM downloads at boot.

It speaks the documented shapes (cloud.google.com/storage/docs/json_api/v1/objects/get,
.../json_api/v1/status-codes, .../request-endpoints#encoding):

    GET /storage/v1/b/{bucket}/o/{object, URL-encoded: `/` as %2F}?alt=media   `Authorization: Bearer <token>`
        -> 200 the object's bytes; `Content-Type`, `x-goog-generation`, `x-goog-hash: md5=..` (the real one
           adds `crc32c=..`: no CRC32C library is a dependency), `ETag`
    GET /storage/v1/b/{bucket}/o/{object}          (no alt=media)
        -> 200 the object resource {"kind": "storage#object", "bucket", "name", "size", "md5Hash", ...}
    GET /download/storage/v1/b/{bucket}/o/{object}?alt=media      the same download, on the download path

Errors are the JSON API's `{"error": {"code", "message", "errors": [{"message", "domain": "global",
"reason"}]}}`: 401 (reason `required`) without a bearer token or, with `require_token` set, with another
one; 403 (reason `forbidden`) for a refused client (`refuse_first(per_client)`, a grant not yet propagated);
404 (reason `notFound`) for an unknown bucket or object; 503 (reason `backendError`) for `fail_next(n)`.
Every request is logged in `accesses`.

    fake = FakeStorage()
    fake.put("proj-drainctl-artifacts", "drainctl/wheelhouse-0123456789abcdef.tar.gz", data)
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fakes.refusals import Access, DataPlane, bearer, record


def storage_error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}


class FakeStorage(DataPlane):
    """Buckets of objects (bytes); every method runs on the fake's own loop."""

    def __init__(self, *, require_token: str | None = None) -> None:
        self.require_token = require_token
        self.buckets: dict[str, dict[str, tuple[bytes, str, int]]] = {}
        """bucket -> object name -> (data, content type, generation)."""
        super().__init__()
        self.generation = 1_700_000_000_000_000

    # --- test controls -----------------------------------------------------------------------------------

    def put(self, bucket: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.generation += 1
        self.buckets.setdefault(bucket, {})[name] = (data, content_type, self.generation)

    def add_bucket(self, bucket: str) -> None:
        self.buckets.setdefault(bucket, {})

    def downloads(self, client: str | None = None) -> list[Access]:
        """Downloads answered 200 (by `client`, if given)."""
        return [a for a in self.accesses if a.status == 200 and client in (None, a.client)]

    # --- HTTP ----------------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/storage/v1/b/{bucket}/o/{name:.+}", self._get)
        app.router.add_get("/download/storage/v1/b/{bucket}/o/{name:.+}", self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        # The raw path: an object name's %2F must not split it (the matched path is already decoded).
        raw = request.raw_path.split("?", 1)[0]
        bucket_part, _, name_part = raw.split("/b/", 1)[1].partition("/o/")
        bucket, name = unquote(bucket_part), unquote(name_part)
        access = record(self.accesses, request.remote, f"{bucket}/{name}", request.headers.get("Authorization", ""))
        response = self._answer(access, bucket, name, media=request.query.get("alt") == "media")
        access.status = response.status
        return response

    def _answer(self, access: Access, bucket: str, name: str, *, media: bool) -> web.Response:
        failure = self.refusals.failure()
        if failure is not None:
            return web.json_response(storage_error(failure, "backendError", "Backend Error"), status=failure)
        token = bearer(access.authorization)
        if not token or (self.require_token is not None and token != self.require_token):
            message = ("Anonymous caller does not have storage.objects.get access to the Google Cloud Storage "
                       "object. Permission 'storage.objects.get' denied on resource (or it may not exist).")
            return web.json_response(storage_error(401, "required", message), status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if self.refusals.refuse(access.client):
            message = ("The caller does not have storage.objects.get access to the Google Cloud Storage object. "
                       "Permission 'storage.objects.get' denied on resource (or it may not exist).")
            return web.json_response(storage_error(403, "forbidden", message), status=403)
        objects = self.buckets.get(bucket)
        if objects is None:
            return web.json_response(storage_error(404, "notFound", "The specified bucket does not exist."),
                                     status=404)
        if name not in objects:
            return web.json_response(storage_error(404, "notFound", f"No such object: {bucket}/{name}"), status=404)
        data, content_type, generation = objects[name]
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        if not media:
            return web.json_response(self._resource(bucket, name, data, content_type, generation, md5))
        headers = {"x-goog-generation": str(generation), "x-goog-metageneration": "1", "x-goog-hash": f"md5={md5}",
                   "x-goog-stored-content-length": str(len(data)), "ETag": f'"{hashlib.md5(data).hexdigest()}"'}
        return web.Response(body=data, content_type=content_type, headers=headers)

    def _resource(self, bucket: str, name: str, data: bytes, content_type: str, generation: int,
                  md5: str) -> dict[str, Any]:
        link = (f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
                f"?generation={generation}&alt=media")
        return {"kind": "storage#object", "id": f"{bucket}/{name}/{generation}", "name": name, "bucket": bucket,
                "generation": str(generation), "metageneration": "1", "contentType": content_type,
                "size": str(len(data)), "md5Hash": md5, "mediaLink": link, "storageClass": "STANDARD"}
