"""The trust directory's TLS and token material: a CA, a certificate per identity naming it,
private files 0600, kept across runs; token verify keys from the directory or from an
identity provider's JWKS."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from jwt.algorithms import OKPAlgorithm

from keel_contracts.errors import Unauthenticated
from keel_core import trust
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import mint_token


def test_every_identity_gets_a_certificate_from_one_ca(tmp_path: Path) -> None:
    material = trust.TrustMaterial(trust.generate(tmp_path / "t"))
    ca = x509.load_pem_x509_certificate(material.tls_identity("policy").ca)
    for identity in (*trust.AUDIT_IDENTITIES, trust.AGENTS_SERVER):
        tls = material.tls_identity(identity)
        cert = x509.load_pem_x509_certificate(tls.cert)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == identity
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"spiffe://keel/{identity}" in sans.get_values_for_type(
            x509.UniformResourceIdentifier
        )
        assert {"localhost", identity} <= set(sans.get_values_for_type(x509.DNSName))
        public = ca.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        cert.verify_directly_issued_by(ca)
        key_mode = stat.S_IMODE((tmp_path / "t" / "tls" / f"{identity}.key").stat().st_mode)
        assert key_mode == 0o600
    assert repr(material.tls_identity("policy")) == "TlsIdentity('policy', <key>)"


def test_the_agents_server_gets_a_certificate_and_no_audit_key(tmp_path: Path) -> None:
    """Its own transport identity (not the operator's), and nothing to sign audit with: it
    writes no records of its own."""
    directory = trust.generate(tmp_path / "t")
    assert (directory / "tls" / "agents-server.pem").exists()
    assert not (directory / "audit-agents-server.key").exists()


def test_an_older_directory_gains_the_agents_server_certificate(tmp_path: Path) -> None:
    directory = trust.generate(tmp_path / "t", tls_only=())
    assert not (directory / "tls" / "agents-server.pem").exists()
    ca_before = (directory / "tls" / "ca.pem").read_bytes()
    trust.generate(directory)
    tls = trust.TrustMaterial(directory).tls_identity(trust.AGENTS_SERVER)
    ca = x509.load_pem_x509_certificate(ca_before)
    x509.load_pem_x509_certificate(tls.cert).verify_directly_issued_by(ca)


def test_generating_again_keeps_the_ca_and_the_certificates(tmp_path: Path) -> None:
    directory = trust.generate(tmp_path / "t")
    before = (directory / "tls" / "agent-loop.pem").read_bytes()
    ca_before = (directory / "tls" / "ca.pem").read_bytes()
    trust.generate(directory)
    assert (directory / "tls" / "agent-loop.pem").read_bytes() == before
    assert (directory / "tls" / "ca.pem").read_bytes() == ca_before


def test_tokens_verify_against_a_configured_jwks_and_not_the_dev_key(tmp_path: Path) -> None:
    material = trust.TrustMaterial(trust.generate(tmp_path / "t"))
    idp = Ed25519PrivateKey.generate()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [json.loads(OKPAlgorithm.to_jwk(idp.public_key()))]}))
    verifier = token_verifier(material, trust.TrustSettings(token_keys=jwks))
    principal = verifier.verify(mint_token(idp, sub="ann", tenant="acme", roles=["reviewer"]))
    assert (principal.name, principal.tenant, principal.roles) == (
        "ann",
        "acme",
        frozenset({"reviewer"}),
    )
    dev = mint_token(material.token_signing_key(), sub="x", tenant="acme", roles=["reviewer"])
    with pytest.raises(Unauthenticated, match="signed by no trusted key"):
        verifier.verify(dev)
    with pytest.raises(Unauthenticated, match="names no tenant"):
        verifier.verify(mint_token(idp, sub="ann", tenant="", roles=[]))
