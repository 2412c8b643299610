"""The inbox's front gate: a Host outside the allow-list is refused before any page (DNS
rebinding), failed logins from one address are throttled, and the secured login takes the
same JWTs as gRPC (role "reviewer"; the reviewer is the token's subject)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from keel_approval.app import inbox_denied
from keel_approval.config import Settings
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.web.routes import Inbox
from keel_approval.handlers.web.sessions import LoginSessions
from keel_approval.handlers.web.throttle import LoginThrottle
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_core import trust
from keel_core.grpc.tokens import mint_token
from keel_core.testing import InMemoryPublisher, in_memory_audit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def material(tmp_path: Path) -> trust.TrustMaterial:
    return trust.TrustMaterial(trust.generate(tmp_path / "trust"))


@pytest.fixture
def denials() -> list[tuple[str, str]]:
    return []


@pytest.fixture
async def client(
    material: trust.TrustMaterial, clock: Clock, denials: list[tuple[str, str]]
) -> AsyncIterator[httpx.AsyncClient]:
    async def denied(client: str, reason: str) -> None:
        denials.append((client, reason))

    audit, _ = in_memory_audit("approval")
    audit.start()
    book = ApprovalBook()
    decider = Decider(book, InMemoryPublisher(), audit, ApprovalMetrics(CollectorRegistry()))
    settings = Settings(trust=trust.TrustSettings(dir=material.directory))
    inbox = Inbox(
        book,
        decider,
        ReviewerAuth.from_settings(settings),
        LoginSessions(3600),
        allowed_hosts=settings.web_allowed_hosts,
        throttle=LoginThrottle(settings.web_login_failures_per_minute, clock=clock),
        on_denied=denied,
    )
    transport = httpx.ASGITransport(app=inbox.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8086") as c:
        yield c
    await audit.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_a_foreign_host_is_refused_before_any_page(client: httpx.AsyncClient) -> None:
    assert (await client.get("/login")).status_code == 200
    assert (await client.get("/login", headers={"host": "localhost:8086"})).status_code == 200
    for host in ("attacker.example", "attacker.example:8086", "127.0.0.1.nip.io"):
        refused = await client.get("/login", headers={"host": host})
        assert refused.status_code == 400, host


async def test_failed_logins_are_throttled_per_address_for_a_minute(
    client: httpx.AsyncClient, material: trust.TrustMaterial, clock: Clock
) -> None:
    good = mint_token(material.token_signing_key(), sub="rita", tenant="*", roles=["reviewer"])
    codes = [
        (await client.post("/login", data={"token": f"guess-{n}"})).status_code for n in range(6)
    ]
    assert codes == [401, 401, 401, 401, 401, 429]
    assert (await client.post("/login", data={"token": good})).status_code == 429
    clock.now += 61
    assert (await client.post("/login", data={"token": good})).status_code == 303


async def test_the_login_takes_a_reviewer_jwt_and_not_another_role(
    client: httpx.AsyncClient, material: trust.TrustMaterial
) -> None:
    key = material.token_signing_key()
    submitter = mint_token(key, sub="sam", tenant="default", roles=["submitter"])
    assert (await client.post("/login", data={"token": submitter})).status_code == 401
    # The open mode's name field is not offered on a secured service.
    assert (await client.post("/login", data={"reviewer": "mallory"})).status_code == 401
    reviewer = mint_token(key, sub="rita", tenant="default", roles=["reviewer"])
    assert (await client.post("/login", data={"token": reviewer})).status_code == 303
    page = await client.get("/")
    assert "rita" in page.text


def test_a_principal_from_the_interceptor_is_the_reviewer_whatever_the_request_claims(
    material: trust.TrustMaterial,
) -> None:
    from keel_core.grpc import auth as grpc_auth
    from keel_core.grpc.tokens import Principal

    reviewer_auth = ReviewerAuth.from_settings(
        Settings(trust=trust.TrustSettings(dir=material.directory))
    )
    token = grpc_auth._principal.set(Principal("rita", "token", "*", frozenset({"reviewer"})))
    try:
        assert reviewer_auth.reviewer(None, claimed="mallory") == "rita"
    finally:
        grpc_auth._principal.reset(token)


async def test_every_refusal_is_reported_for_the_audit(
    client: httpx.AsyncClient, denials: list[tuple[str, str]]
) -> None:
    """A foreign Host, a failed login and a throttled one each reach ``on_denied`` (the
    service audits them as ``security.denied``, as gRPC refusals are)."""
    await client.get("/login", headers={"host": "attacker.example"})
    for n in range(6):
        await client.post("/login", data={"token": f"guess-{n}"})
    reasons = [reason for _, reason in denials]
    assert reasons[0] == "Host 'attacker.example' is not allowed"
    assert reasons.count("failed login: the token names no reviewer") == 5
    assert reasons[-1] == "login throttled: too many failed logins"


async def test_the_service_audits_an_inbox_refusal_as_security_denied() -> None:
    audit, published = in_memory_audit("approval")
    audit.start()
    await inbox_denied(audit)("203.0.113.9", "Host 'attacker.example' is not allowed")
    await audit.close()
    (record,) = published.audit_records()
    assert (record.action, record.actor, record.subject) == (
        "security.denied",
        "203.0.113.9",
        "approval inbox",
    )
    assert record.details == {"reason": "Host 'attacker.example' is not allowed"}
