"""Bearer tokens of external callers: JWTs (EdDSA) carrying who (``sub``), which tenant, and
which roles ("submitter", "reviewer", "operator"), optionally an agent and a profile.

The dev issuer is ``keel dev token`` with the trust directory's ``token-signing.key``; a
deployment points ``KEEL_TRUST_TOKEN_KEYS`` at its identity provider's keys (PEM or JWKS) and
nothing else changes: services only ever verify.

A verified token is remembered (keyed by the token itself, up to its ``exp``): a caller sends
the same token on every call, and checking an EdDSA signature and the claims again each time
was the largest part of what a secured call cost the server. A remembered token is refused
from the moment it expires, as an unremembered one would be, and forgotten with every other
when the keys change (``use_keys``: a key taken out revokes what it signed at once).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from keel_contracts.errors import Unauthenticated

ALGORITHM = "EdDSA"
ROLES = ("submitter", "reviewer", "operator")
# Verified tokens remembered at most (the oldest go first): far more callers than one service
# sees at once, and a bound on what a flood of distinct valid tokens can hold.
TOKEN_CACHE_ENTRIES = 4096


@dataclass(frozen=True)
class Principal:
    """Who is calling: a service (its mTLS certificate's identity) or a token's subject."""

    name: str
    kind: Literal["service", "token"]
    tenant: str = ""
    roles: frozenset[str] = field(default_factory=frozenset)
    agent: str = ""
    profile: str = ""

    def describe(self) -> str:
        if self.kind == "service":
            return f"service {self.name!r}"
        return f"{self.name!r} (tenant {self.tenant!r}, roles {sorted(self.roles)})"


def mint_token(
    key: Ed25519PrivateKey,
    *,
    sub: str,
    tenant: str,
    roles: Iterable[str],
    ttl_s: float = 3600.0,
    agent: str = "",
    profile: str = "",
    issuer: str = "keel",
    audience: str = "keel",
    now: float | None = None,
) -> str:
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": sub,
        "tenant": tenant,
        "roles": sorted(set(roles)),
        "iat": int(issued),
        "exp": int(issued + ttl_s),
        "iss": issuer,
        "aud": audience,
    }
    if agent:
        claims["agent"] = agent
    if profile:
        claims["profile"] = profile
    return jwt.encode(claims, key, algorithm=ALGORITHM)


class TokenVerifier:
    """Checks signature (any configured key), expiry, issuer and audience; a token that fails
    any of them is ``Unauthenticated`` with the reason."""

    def __init__(
        self,
        keys: Sequence[Ed25519PublicKey],
        *,
        issuer: str = "keel",
        audience: str = "keel",
        reviewer_tokens: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        cache_entries: int = TOKEN_CACHE_ENTRIES,
    ) -> None:
        """``clock``: wall-clock seconds, the time ``exp`` is compared with."""
        if not keys:
            raise ValueError("a token verifier needs at least one key")
        self._keys = list(keys)
        self._issuer = issuer
        self._audience = audience
        self._static = [(t.encode(), n) for t, n in (reviewer_tokens or {}).items() if t and n]
        self._clock = clock
        self._cache_entries = cache_entries
        # token -> (its exp, the principal it names); only tokens that passed every check.
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def use_keys(self, keys: Sequence[Ed25519PublicKey]) -> None:
        """Verify with ``keys`` from now on; every remembered token is checked again, so one
        signed by a key no longer trusted is refused from the next call."""
        if not keys:
            raise ValueError("a token verifier needs at least one key")
        self._keys = list(keys)
        self._verified.clear()

    def verify(self, token: str) -> Principal:
        reviewer = self._static_reviewer(token)
        if reviewer:
            return Principal(reviewer, "token", tenant="*", roles=frozenset({"reviewer"}))
        remembered = self._verified.get(token)
        if remembered is not None:
            expires, principal = remembered
            if self._clock() < expires:
                return principal
            del self._verified[token]
        principal, expires = self._check(token)
        self._verified[token] = (expires, principal)
        while len(self._verified) > self._cache_entries:
            self._verified.popitem(last=False)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        """Signature, expiry, issuer, audience and claims: the principal and its ``exp``."""
        claims: dict[str, Any] | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=self._audience,
                    issuer=self._issuer,
                    options={"require": ["exp", "sub", "tenant"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"bearer token refused: {exc}") from exc
        if claims is None:
            raise Unauthenticated("bearer token refused: signed by no trusted key")
        if not claims["tenant"] or not isinstance(claims["tenant"], str):
            raise Unauthenticated("bearer token refused: it names no tenant")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthenticated("bearer token refused: 'roles' is not a list of names")
        principal = Principal(
            name=str(claims["sub"]),
            kind="token",
            tenant=str(claims.get("tenant", "")),
            roles=frozenset(roles),
            agent=str(claims.get("agent", "")),
            profile=str(claims.get("profile", "")),
        )
        expires = float(claims["exp"])
        if self._clock() >= expires:  # this verifier's clock has the last word (tests fake it)
            raise Unauthenticated("bearer token refused: Signature has expired")
        return principal, expires

    def _static_reviewer(self, token: str) -> str:
        found = ""
        presented = token.encode()
        for known, name in self._static:  # compare with every token: no early exit
            if hmac.compare_digest(known, presented):
                found = name
        return found


def bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if text[:7].lower() == "bearer ":
            return text[7:].strip()
    return None
