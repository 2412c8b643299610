"""Who is resolving: the reviewer a verified credential names, never a name the client sends.

Secured (trust material present, the default): on gRPC the server interceptor has already
verified the call's bearer token (a JWT with the role "reviewer", or a static reviewer token
of ``KEEL_APPROVAL_REVIEWER_TOKENS``) and the reviewer is its subject; the web inbox's login
form takes the same tokens. The name in ``ResolveRequest.reviewer`` is ignored.

Open (no token of any kind can be verified): only under ``KEEL_TRUST_INSECURE_DEV`` with no
reviewer tokens; the claimed name is used and start-up logs a warning.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from keel_approval.config import Settings
from keel_approval.errors import Unauthenticated
from keel_contracts.errors import Unauthenticated as TokenRefused
from keel_core.grpc.auth import current_principal
from keel_core.grpc.authorization import REVIEWER
from keel_core.grpc.security import token_verifier
from keel_core.grpc.tokens import TokenVerifier, bearer
from keel_core.trust import load


class ReviewerAuth:
    def __init__(self, tokens: Mapping[str, str], verifier: TokenVerifier | None = None) -> None:
        self._tokens = [(token.encode(), name) for token, name in tokens.items() if token]
        self._verifier = verifier

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewerAuth:
        """JWTs and static tokens when there is trust material; static tokens only (or the
        open mode) in the insecure dev mode."""
        material = load(settings.trust, "approval")
        verifier = token_verifier(material, settings.trust) if material is not None else None
        return cls(settings.reviewer_tokens, verifier)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens) or self._verifier is not None

    def reviewer(self, metadata: Iterable[tuple[str, str | bytes]] | None, claimed: str) -> str:
        principal = current_principal()
        if principal is not None:  # verified (and its role checked) by the interceptor
            return principal.name
        # No interceptor: a plaintext server (the insecure dev mode, an in-process component
        # test). Static tokens still bind the reviewer; without them the claim stands.
        if not self._tokens:
            return claimed
        presented = bearer(metadata)
        if presented is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        found = self.name_of(presented.encode())
        if not found:
            raise Unauthenticated("the token names no reviewer")
        return found

    def name_of(self, presented: bytes) -> str:
        """The reviewer a token names (a static token's name, or a valid JWT's subject with
        the role "reviewer"); "" when it names none."""
        found = ""
        for token, name in self._tokens:  # compare with every token: no early exit
            if hmac.compare_digest(token, presented):
                found = name
        if found or self._verifier is None:
            return found
        try:
            principal = self._verifier.verify(presented.decode(errors="replace"))
        except TokenRefused:
            return ""
        return principal.name if REVIEWER in principal.roles else ""
