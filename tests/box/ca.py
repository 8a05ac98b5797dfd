"""The box's certificate authority: the cloud's public names served over real TLS from one machine.

The boot scripts call `https://secretmanager.googleapis.com/...`, `https://<vault>.vault.azure.net/...` with
plain `curl` (the system CA store, never `-k`), and the daemons trust the image's store through
`SSL_CERT_FILE` (contracts C2). So the box issues, once per run, a private CA and one leaf whose SANs cover
every cloud name the gateway answers for (`LEAF_NAMES`), and a bundle (the host's CA store followed by the
box CA) that the harness bind-mounts over each VM's `/etc/ssl/certs/ca-certificates.crt`:

    ca = BoxCa.create(tmp_path / "ca")
    ca.bundle_path      # host CA bundle + box CA: curl --cacert, SSL_CERT_FILE, the VM's CA store
    ca.cert_path        # the leaf (PEM), for the gateway's TLS server (tests/box/gateway.py)
    ca.key_path         # its private key (PEM, mode 0600)
    ca.server_context() # an ssl.SSLContext serving that leaf

Nothing leaves the run's directory: the CA key signs the leaf and is then thrown away with the directory.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAF_NAMES = (
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
    "compute.googleapis.com",
    "oauth2.googleapis.com",
    "management.azure.com",
    "login.microsoftonline.com",
    "*.vault.azure.net",
    "*.blob.core.windows.net",
)
"""The names the leaf is valid for (one wildcard level, as TLS allows: `<vault>.vault.azure.net`)."""

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Debian's CA store (ca-certificates), which the VMs' curl and daemons use."""

VALID_DAYS = 7


@dataclass(frozen=True)
class BoxCa:
    """Paths of a CA and its one leaf, created by `create` (see the module docstring)."""

    directory: Path
    ca_path: Path
    """The box CA certificate alone (PEM)."""
    bundle_path: Path
    cert_path: Path
    key_path: Path
    names: tuple[str, ...]

    @classmethod
    def create(cls, directory: Path, *, names: tuple[str, ...] = LEAF_NAMES,
               host_bundle: Path = HOST_BUNDLE) -> BoxCa:
        """A new CA and leaf in `directory` (created); the bundle starts with `host_bundle` if it exists."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _leaf_certificate(leaf_key, ca_key, ca_cert, names)
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        box = cls(directory, directory / "box-ca.pem", directory / "ca-certificates.crt",
                  directory / "gateway.pem", directory / "gateway.key", names)
        box.ca_path.write_bytes(ca_pem)
        host = host_bundle.read_bytes() if host_bundle.is_file() else b""
        if host and not host.endswith(b"\n"):
            host += b"\n"
        box.bundle_path.write_bytes(host + ca_pem)
        # The chain a server sends: the leaf, then the CA (clients that trust the CA verify it).
        box.cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca_pem)
        box.key_path.touch(mode=0o600)
        box.key_path.write_bytes(leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return box

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the leaf (TLS 1.2+)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting the bundle (what a VM's Python trusts through SSL_CERT_FILE)."""
        return ssl.create_default_context(cafile=str(self.bundle_path))


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=VALID_DAYS)


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "drainctl box"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "drainctl box CA")])
    start, end = _validity()
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_certificate(key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
                      ca_cert: x509.Certificate, names: tuple[str, ...]) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    start, end = _validity()
    usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
