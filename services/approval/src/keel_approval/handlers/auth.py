"""Who is resolving: the reviewer named by a bearer token (gRPC metadata, or the web inbox's
login form: the same tokens).

With tokens configured, the name a client claims in ``ResolveRequest.reviewer`` is ignored:
the decision records the token's reviewer. With none configured (development), the claimed
name is used as before and start-up logs a warning.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from keel_approval.errors import Unauthenticated

BEARER = "bearer "


class ReviewerAuth:
    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = [(token.encode(), name) for token, name in tokens.items() if token]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def reviewer(self, metadata: Iterable[tuple[str, str | bytes]] | None, claimed: str) -> str:
        if not self.enabled:
            return claimed
        presented = _bearer(metadata)
        if presented is None:
            raise Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        found = self.name_of(presented)
        if not found:
            raise Unauthenticated("unknown reviewer token")
        return found

    def name_of(self, presented: bytes) -> str:
        """The reviewer a token names; "" when it names none."""
        found = ""
        for token, name in self._tokens:  # compare with every token: no early exit
            if hmac.compare_digest(token, presented):
                found = name
        return found


def _bearer(metadata: Iterable[tuple[str, str | bytes]] | None) -> bytes | None:
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if text[: len(BEARER)].lower() == BEARER:
            return text[len(BEARER) :].strip().encode()
    return None
