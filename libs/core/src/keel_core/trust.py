"""The trust material every service reads from one directory (``KEEL_TRUST_DIR``): the keys
that make a record on the bus provably written by the service that owns it.

Kafka ACLs decide who may *write* a topic; these keys let every *reader* check who wrote a
record, so a forged record is refused even where an ACL is missing or a credential leaked.

- ``approval-signing.key`` / ``.pub``: Ed25519. Only the approval service holds the private
  key; it signs every decision and vote, and the agent loop, the tool gateway and the approval
  replicas verify with the public key.
- ``audit-<service>.key`` / ``.pub``: Ed25519, one pair per service identity. A service signs
  its audit records; ``keel audit verify`` checks them with the public keys.
- ``ledger.key``: an HMAC key only the tool gateway holds; its ledger records carry a MAC, and
  a record without a valid one (written by anyone else) is ignored.
- ``tls/ca.pem`` (+ ``ca.key``) and ``tls/<identity>.pem`` / ``.key``: a local CA and one
  certificate per identity (the six services and "operator", the CLI) for mutual TLS on gRPC;
  the identity is the certificate's CN and a ``spiffe://keel/<identity>`` URI SAN.
- ``token-signing.key`` / ``.pub``: Ed25519; signs the dev bearer tokens (``keel dev token``)
  that external callers (submitters, reviewers, operators) present on gRPC and the web inbox.
  A real identity provider's keys replace the public half (``KEEL_TRUST_TOKEN_KEYS``).

``keel dev trust DIR`` (``generate``) makes a directory of fresh material; ``keel dev up`` and
the test stacks make one per run. Private keys are files with mode 0600 and are never logged.
Without a directory a service refuses to start unless ``KEEL_TRUST_INSECURE_DEV=true``, which
signs and checks nothing and says so at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from keel_contracts.errors import ConfigError

log = logging.getLogger(__name__)

APPROVAL_SIGNING = "approval-signing"
LEDGER_KEY = "ledger.key"
# Old public keys (and HMAC keys) after a rotation: still verified, never used to sign.
RETIRED_DIR = "retired"
TOKEN_SIGNING = "token-signing"
TLS_DIR = "tls"
# Service identities that write audit records (the CLI signs as "operator").
AUDIT_IDENTITIES = (
    "agent-loop",
    "llm-gateway",
    "tool-gateway",
    "policy",
    "memory",
    "approval",
    "operator",
)
# Identities with a certificate and nothing else: the agents server (MCP/A2A) presents its
# own on the agent loop's mutual-TLS port, so the connection (and the audit of what came
# through it) names it; it signs no audit records and holds no Kafka credential.
AGENTS_SERVER = "agents-server"
TLS_ONLY_IDENTITIES = (AGENTS_SERVER,)


class TrustSettings(BaseSettings):
    """Where the trust material is (``KEEL_TRUST_*``, shared by every service)."""

    model_config = SettingsConfigDict(env_prefix="KEEL_TRUST_", extra="ignore")

    dir: Path | None = None
    # Run without trust material: nothing is signed and nothing is verified. For a laptop
    # only; a service started so logs a warning.
    insecure_dev: bool = Field(default=False)
    # Where bearer tokens' verify keys are: a PEM public key or a JWKS (JSON) file, e.g. a
    # real identity provider's. Empty: the directory's token-signing.pub (dev tokens).
    token_keys: Path | None = None
    token_issuer: str = "keel"
    token_audience: str = "keel"
    # Static reviewer credentials (token -> reviewer name), the alternative to JWTs for a
    # small team: a call with one of these is the named reviewer (role "reviewer", any
    # tenant). The approval service adds its KEEL_APPROVAL_REVIEWER_TOKENS here.
    reviewer_tokens: dict[str, str] = Field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class TlsIdentity:
    """One identity's certificate chain for mutual TLS (PEM bytes): the CA every peer is
    checked against, the identity's certificate and its private key."""

    name: str
    ca: bytes
    cert: bytes
    key: bytes = b""

    def __repr__(self) -> str:
        return f"TlsIdentity({self.name!r}, <key>)"


class Signer:
    """Ed25519 signatures over bytes, as unpadded base64url text."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = Verifier(key.public_key())

    def sign(self, data: bytes) -> str:
        return _b64(self._key.sign(data))

    def __repr__(self) -> str:
        return "Signer(<private key>)"


class Verifier:
    """Checks signatures against the current public key and any retired ones (a rotated key
    still verifies what it signed before the rotation)."""

    def __init__(self, key: Ed25519PublicKey, *retired: Ed25519PublicKey) -> None:
        self._keys = (key, *retired)

    def verify(self, data: bytes, signature: str) -> bool:
        try:
            raw = _unb64(signature)
        except ValueError:
            return False
        for key in self._keys:
            try:
                key.verify(raw, data)
            except (InvalidSignature, ValueError):
                continue
            return True
        return False


class Mac:
    """HMAC-SHA256 with a key only its owner holds, as hex text."""

    def __init__(self, key: bytes, *retired: bytes) -> None:
        if any(len(k) < 32 for k in (key, *retired)):
            raise ConfigError("an HMAC key must be at least 32 bytes")
        self._key = key
        self._keys = (key, *retired)

    def mac(self, data: bytes) -> str:
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, mac: str) -> bool:
        """True for a MAC made with the current key or a retired one."""
        return any(
            hmac.compare_digest(hmac.new(key, data, hashlib.sha256).hexdigest(), mac)
            for key in self._keys
        )

    def __repr__(self) -> str:
        return "Mac(<key>)"


class TrustMaterial:
    """Reads the material of one directory; each getter fails with a ``ConfigError`` naming
    the missing file, so a misconfigured service stops at start with one clear line."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise ConfigError(f"trust directory {directory} does not exist (keel dev trust DIR)")
        self.directory = directory

    def approval_signer(self) -> Signer:
        return Signer(self._private(f"{APPROVAL_SIGNING}.key"))

    def approval_verifier(self) -> Verifier:
        return self._verifier(APPROVAL_SIGNING)

    def audit_signer(self, identity: str) -> Signer:
        return Signer(self._private(f"audit-{identity}.key"))

    def audit_verifiers(self) -> dict[str, Verifier]:
        """Every identity whose public audit key is in the directory."""
        return {
            path.name[len("audit-") : -len(".pub")]: self._verifier(path.name[: -len(".pub")])
            for path in sorted(self.directory.glob("audit-*.pub"))
        }

    def ledger_mac(self) -> Mac:
        retired = sorted((self.directory / RETIRED_DIR).glob(f"{LEDGER_KEY}.*"))
        return Mac(self._read(LEDGER_KEY), *(path.read_bytes() for path in retired))

    def _verifier(self, stem: str) -> Verifier:
        retired = sorted((self.directory / RETIRED_DIR).glob(f"{stem}.*.pub"))
        return Verifier(
            self._public(f"{stem}.pub"),
            *(self._public(f"{RETIRED_DIR}/{path.name}") for path in retired),
        )

    def tls_identity(self, identity: str) -> TlsIdentity:
        """The CA and ``identity``'s certificate and key, for a gRPC server or client."""
        return TlsIdentity(
            identity,
            ca=self._read(f"{TLS_DIR}/ca.pem"),
            cert=self._read(f"{TLS_DIR}/{identity}.pem"),
            key=self._read(f"{TLS_DIR}/{identity}.key"),
        )

    def token_signing_key(self) -> Ed25519PrivateKey:
        """The dev token issuer's key (``keel dev token``; never held by a service)."""
        return self._private(f"{TOKEN_SIGNING}.key")

    def token_verify_keys(self, settings: TrustSettings) -> list[Ed25519PublicKey]:
        """The keys a bearer token may be signed with: ``settings.token_keys`` (PEM or JWKS),
        else this directory's dev token key."""
        if settings.token_keys is None:
            return [self._public(f"{TOKEN_SIGNING}.pub")]
        return read_verify_keys(settings.token_keys)

    def _read(self, name: str) -> bytes:
        path = self.directory / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"trust material {path} cannot be read: {exc.strerror}") from exc

    def _private(self, name: str) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self._read(name), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{self.directory / name} is not an Ed25519 private key")
        return key

    def _public(self, name: str) -> Ed25519PublicKey:
        key = serialization.load_pem_public_key(self._read(name))
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"{self.directory / name} is not an Ed25519 public key")
        return key


def load(settings: TrustSettings, service: str) -> TrustMaterial | None:
    """The service's material, or None in the insecure dev mode (logged as a warning). Raises
    ``ConfigError`` when neither is configured."""
    if settings.dir is not None:
        return TrustMaterial(settings.dir)
    if settings.insecure_dev:
        log.warning(
            "%s runs WITHOUT trust material (KEEL_TRUST_INSECURE_DEV): approvals, audit and "
            "ledger records are neither signed nor verified; never run so beyond a laptop",
            service,
        )
        return None
    raise ConfigError(
        "no trust material: set KEEL_TRUST_DIR (make one with `keel dev trust DIR`), or "
        "KEEL_TRUST_INSECURE_DEV=true on a laptop"
    )


def rotate(directory: Path, stem: str) -> Path:
    """Replace one key (``approval-signing``, ``audit-<identity>``, ``ledger``): the old public
    half (the old HMAC key) moves to ``retired/`` — readers keep verifying what it signed —
    and a fresh key takes its place. Restart the key's one writer afterwards; readers pick the
    retired key up at their next start."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    retired = directory / RETIRED_DIR
    retired.mkdir(mode=0o700, exist_ok=True)
    if stem in ("ledger", LEDGER_KEY):
        os.replace(directory / LEDGER_KEY, retired / f"{LEDGER_KEY}.{stamp}")
        _secret(directory / LEDGER_KEY, secrets.token_bytes(32))
        return directory
    if not (directory / f"{stem}.key").exists():
        raise ConfigError(f"no key {stem!r} in {directory}")
    os.replace(directory / f"{stem}.pub", retired / f"{stem}.{stamp}.pub")
    (directory / f"{stem}.key").unlink()
    _pair(directory, stem)
    return directory


def generate(
    directory: Path,
    identities: Iterable[str] = AUDIT_IDENTITIES,
    tls_only: Iterable[str] = TLS_ONLY_IDENTITIES,
) -> Path:
    """Fresh material in ``directory`` (created 0700; private files 0600). Existing files are
    kept, so a stack restarted on the same directory keeps verifying its old records (and an
    older directory gains the certificates it lacks, e.g. ``agents-server``'s).

    ``identities`` get an audit key pair and a certificate; ``tls_only`` a certificate only.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    names = list(identities)
    _pair(directory, APPROVAL_SIGNING)
    for identity in names:
        _pair(directory, f"audit-{identity}")
    _secret(directory / LEDGER_KEY, secrets.token_bytes(32))
    _pair(directory, TOKEN_SIGNING)
    from keel_core.grpc.certs import generate_certs  # x509 building, for gRPC

    certified = [*names, *(name for name in tls_only if name not in names)]
    generate_certs(directory / TLS_DIR, certified)
    return directory


def read_verify_keys(path: Path) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from a PEM file or a JWKS (``{"keys": [{"kty": "OKP", ...}]}``)."""
    import json

    from jwt.algorithms import OKPAlgorithm

    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"token keys {path} cannot be read: {exc.strerror}") from exc
    keys: list[object]
    if text.lstrip().startswith(b"{"):
        keys = [OKPAlgorithm.from_jwk(key) for key in json.loads(text).get("keys", [])]
    else:
        keys = [serialization.load_pem_public_key(text)]
    found = [key for key in keys if isinstance(key, Ed25519PublicKey)]
    if not found:
        raise ConfigError(f"token keys {path} hold no Ed25519 public key")
    return found


def _pair(directory: Path, stem: str) -> None:
    private_path = directory / f"{stem}.key"
    if private_path.exists():
        return
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _secret(private_path, private)
    (directory / f"{stem}.pub").write_bytes(public)


def secret_file(path: Path, data: bytes) -> None:
    """Write a private file (0600), unless it exists."""
    _secret(path, data)


def _secret(path: Path, data: bytes) -> None:
    if path.exists():
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
