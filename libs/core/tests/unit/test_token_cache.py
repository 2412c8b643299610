"""The token verifier remembers a verified token, but never past what verifying it again would
say: an expired token is refused, a token whose key was taken out is refused, a forged one is
never remembered."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keel_contracts.errors import Unauthenticated
from keel_core.grpc.tokens import TokenVerifier, mint_token
from keel_core.testing import FakeClock


def now() -> float:
    """Real time at the call: PyJWT checks ``exp`` against the wall clock too, so tokens are
    minted when the test runs, not when the module was collected."""
    return time.time()


def token(key: Ed25519PrivateKey, issued: float, ttl_s: float = 60.0, sub: str = "ada") -> str:
    return mint_token(key, sub=sub, tenant="acme", roles=["submitter"], ttl_s=ttl_s, now=issued)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token whose signature and claims are checked (the cost the cache saves)."""
    seen: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_a_token_is_checked_once_then_remembered(checks: list[str]) -> None:
    start = now()
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier([key.public_key()], clock=FakeClock(start))
    issued = token(key, start)
    first = verifier.verify(issued)
    assert verifier.verify(issued) == first
    assert (first.name, first.tenant) == ("ada", "acme")
    assert checks == [issued]


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    start = now()
    key = Ed25519PrivateKey.generate()
    clock = FakeClock(start)
    verifier = TokenVerifier([key.public_key()], clock=clock)
    issued = token(key, start, ttl_s=60)
    verifier.verify(issued)
    clock.advance(59)
    assert verifier.verify(issued).name == "ada"
    clock.advance(1)  # now == exp: expired, as PyJWT counts it
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(issued)


def test_taking_a_key_out_revokes_the_tokens_it_signed_at_once() -> None:
    start = now()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = TokenVerifier([old.public_key(), new.public_key()], clock=FakeClock(start))
    by_old, by_new = token(old, start, sub="old"), token(new, start, sub="new")
    verifier.verify(by_old)
    verifier.verify(by_new)
    verifier.use_keys([new.public_key()])
    with pytest.raises(Unauthenticated, match="no trusted key"):
        verifier.verify(by_old)
    assert verifier.verify(by_new).name == "new"


def test_a_forged_token_is_refused_every_time() -> None:
    start = now()
    key, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = TokenVerifier([key.public_key()], clock=FakeClock(start))
    forged = token(forger, start)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="no trusted key"):
            verifier.verify(forged)


def test_the_cache_is_bounded(checks: list[str]) -> None:
    start = now()
    key = Ed25519PrivateKey.generate()
    verifier = TokenVerifier([key.public_key()], clock=FakeClock(start), cache_entries=2)
    first, second, third = (token(key, start, sub=name) for name in ("a", "b", "c"))
    for issued in (first, second, third, first):
        verifier.verify(issued)
    assert checks == [first, second, third, first]  # the first went when the third came in
