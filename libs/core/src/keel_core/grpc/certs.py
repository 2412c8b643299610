"""A local certificate authority and one certificate per identity, for mutual TLS on gRPC.

Each certificate names its identity twice: as the subject's CN (what gRPC's auth context
exposes as ``x509_common_name``, which the server interceptor reads) and as a
``spiffe://keel/<identity>`` URI SAN (what a service mesh or cert-manager would issue). Every
certificate also carries ``localhost``, ``127.0.0.1`` and its identity as a DNS name (the host
name of a compose or Kubernetes service of that name), so the same file serves a service's
listener and its outgoing calls (serverAuth and clientAuth). Kubernetes replaces this with
cert-manager; the file layout (``ca.pem``, ``<identity>.pem``, ``<identity>.key``) stays.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keel_contracts.errors import ConfigError

CA_DAYS = 3650
LEAF_DAYS = 825
SPIFFE = "spiffe://keel/"


def generate_certs(directory: Path, identities: Iterable[str]) -> None:
    """A CA (kept if present) and a certificate per identity (kept if present)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key_path, ca_path = directory / "ca.key", directory / "ca.pem"
    if ca_key_path.exists() and ca_path.exists():
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ConfigError(f"{ca_key_path} is not an EC private key")
        ca_key, ca = loaded, x509.load_pem_x509_certificate(ca_path.read_bytes())
    else:
        ca_key, ca = make_ca("keel local CA")
        _write(directory, "ca", ca, ca_key)
    for identity in identities:
        if not (directory / f"{identity}.key").exists():
            key, cert = make_leaf(identity, ca, ca_key)
            _write(directory, identity, cert, key)


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    identity: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName(identity),  # a compose/Kubernetes service of that name
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.UniformResourceIdentifier(SPIFFE + identity),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    from keel_core.trust import secret_file

    secret_file(directory / f"{stem}.key", key_pem(key))
    (directory / f"{stem}.pem").write_bytes(pem(cert))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
