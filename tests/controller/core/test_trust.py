"""Every drainctl client trusts the operating system's CA store (controller/core/http.py `system_trust`), as the
VM's own `curl` does: a controller on an image whose bundle holds a private CA reaches a peer that CA signed.
Found by the box (docs/box.md): httpx alone trusted only certifi's roots, so every Compute and ARM call of the
box's controllers failed with CERTIFICATE_VERIFY_FAILED while the boot scripts' `curl` passed. A real TLS server
on loopback, a real CA (the box's)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.core import http as drainctl_http
from controller.core.errors import PermanentError, TemporaryError
from controller.core.http import HttpErrors, client, send_sync
from tests.box.ca import BoxCa


class Down(TemporaryError):
    pass


class Refused(PermanentError):
    pass


ERRORS = HttpErrors("the peer", timeout=Down, unreachable=Down, unavailable=Down, credentials=Refused,
                    refused=Refused)


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def ca(tmp_path: Path) -> BoxCa:
    return BoxCa.create(tmp_path / "ca", names=("localhost",))


@pytest.fixture
def server(ca: BoxCa) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    httpd.socket = ca.server_context().wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://localhost:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drainctl_http, "_TRUST", None)  # the store is read once per process


def test_a_peer_signed_by_the_images_ca_is_trusted(server: str, ca: BoxCa, fresh_trust: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.bundle_path))  # the image's bundle with the private CA in it
    with client(base_url=server, timeout=5.0) as http:
        assert send_sync(http, ERRORS, "GET", "/").text == "ok"


def test_a_peer_no_trusted_ca_signed_is_refused(server: str, fresh_trust: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with client(base_url=server, timeout=5.0) as http, pytest.raises(Down, match="certificate verify failed"):
        send_sync(http, ERRORS, "GET", "/")
