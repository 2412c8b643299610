"""Decisions and votes are signed by the approval service, and a replica applies a record of
the decisions topic only if the service signed it and it keeps the request's own rules
(reviewer, no self-approval, quorum, argument schema, the request it names). Anything else is
refused: not applied, audited as ``security.denied``, and dead-lettered by the rebuild."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.events import decision_event
from keel_approval.domain.models import Approval
from keel_approval.handlers.mapping import approval_to_proto
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestReader
from keel_approval.usecases.rebuild import rebuild
from keel_contracts.approvals import sign_event, signature_problem
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_core.trust import Signer

SIGNER = Signer(Ed25519PrivateKey.generate())
CREATED = datetime(2030, 1, 1, tzinfo=UTC)
SCHEMA = {"type": "object", "properties": {"to": {"type": "string"}}, "required": ["to"]}


def request(approval_id: str = "ap-1", required: int = 1) -> Approval:
    return Approval(
        id=approval_id,
        session_id="s1",
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "bob"},
        idempotency_key="s1:1:0",
        created_at=CREATED,
        tenant="acme",
        required_approvals=required,
        arguments_schema=SCHEMA,
    )


def decided(approval: Approval | None = None, **changes: Any) -> ApprovalDecided:
    """The decision the service itself would publish for ``approval`` (approved by ann)."""
    base = (approval or request()).model_copy(
        update={"status": "approved", "decided_by": "ann", "decided_at": CREATED}
    )
    return decision_event(base).model_copy(update=changes)


def envelope(event: ApprovalDecided | ApprovalVoted) -> Envelope:
    return Envelope.wrap(event, source="approval", session_id="s1")


def decider_for(
    *approvals: Approval,
) -> tuple[ApprovalBook, Decider, InMemoryPublisher, InMemoryPublisher]:
    book = ApprovalBook()
    for approval in approvals:
        book.add_request(approval)
    audit, audited = in_memory_audit("approval")
    audit.start()
    publisher = InMemoryPublisher()
    metrics = ApprovalMetrics(CollectorRegistry())
    decider = Decider(book, publisher, audit, metrics, signer=SIGNER, verifier=SIGNER.public)
    return book, decider, publisher, audited


async def test_every_decision_and_vote_published_is_signed_and_get_carries_the_decision() -> None:
    book, decider, publisher, _ = decider_for(request("ap-1"), request("ap-2", required=2))
    await decider.resolve("ap-1", "approve", "ann")
    await decider.resolve("ap-2", "approve", "ann")

    [decision] = [e.parse(ApprovalDecided) for e in publisher.envelopes(APPROVAL_DECISIONS)[:1]]
    [vote] = [e.parse(ApprovalVoted) for e in publisher.envelopes(APPROVAL_DECISIONS)[1:]]
    assert signature_problem(decision, SIGNER.public, datetime.now(UTC)) is None
    assert signature_problem(vote, SIGNER.public) is None
    assert (decision.session_id, decision.tenant, decision.tool_name) == (
        "s1",
        "acme",
        "send_email",
    )
    assert (decision.idempotency_key, decision.agent_id) == ("s1:1:0", "agent-1")
    reply = approval_to_proto(book.get("ap-1"))
    assert ApprovalDecided.model_validate_json(reply.decision_json) == decision


REFUSED = {
    "unsigned": lambda: decided(),
    "signed by another key": lambda: sign_event(decided(), Signer(Ed25519PrivateKey.generate())),
    "changed after signing": lambda: sign_event(decided(), SIGNER).model_copy(
        update={"outcome": "modified", "modified_arguments": {"to": "eve"}}
    ),
    "self-approval": lambda: sign_event(decided(reviewer="agent-1"), SIGNER),
    "no reviewer": lambda: sign_event(decided(reviewer=""), SIGNER),
    "other session": lambda: sign_event(decided(session_id="s2"), SIGNER),
    "other tenant": lambda: sign_event(decided(tenant="other"), SIGNER),
    "other tool": lambda: sign_event(decided(tool_name="delete_all"), SIGNER),
    "modified against the schema": lambda: sign_event(
        decided(outcome="modified", modified_arguments={"to": 5}), SIGNER
    ),
}


@pytest.mark.parametrize("forgery", sorted(REFUSED))
async def test_a_followed_decision_that_is_not_the_services_own_is_refused_and_audited(
    forgery: str,
) -> None:
    book, decider, _, audited = decider_for(request())
    assert await decider.apply_published(envelope(REFUSED[forgery]())) is False
    assert book.get("ap-1").pending
    [denied] = [r for r in audited.audit_records() if r.action == "security.denied"]
    assert denied.subject == "ap-1"
    assert denied.details["reason"]


async def test_a_quorum_cannot_be_bypassed_by_one_signed_approval() -> None:
    book, decider, _, _ = decider_for(request(required=2))
    assert await decider.apply_published(envelope(sign_event(decided(), SIGNER))) is False
    assert book.get("ap-1").pending
    both = sign_event(decided(reviewer="ann,bob"), SIGNER)
    assert await decider.apply_published(envelope(both)) is True
    assert book.get("ap-1").status == "approved"


async def test_a_signed_decision_applies() -> None:
    book, decider, _, _ = decider_for(request())
    assert await decider.apply_published(envelope(sign_event(decided(), SIGNER))) is True
    assert book.get("ap-1").status == "approved"
    assert book.get("ap-1").decision_json


def test_the_rebuild_skips_unsigned_decisions_with_the_reason() -> None:
    book = ApprovalBook()
    requested = Envelope.wrap(request_event(), source="agent-loop", session_id="s1")
    skipped: list[Any] = []
    added, applied = rebuild(
        book,
        RequestReader(),
        [requested],
        [envelope(decided()), envelope(sign_event(decided(reviewer="agent-1"), SIGNER))],
        rejected=skipped,
        verifier=SIGNER.public,
    )
    assert (added, applied) == (1, 0)
    assert book.get("ap-1").pending
    assert [r.topic for r in skipped] == [APPROVAL_DECISIONS, APPROVAL_DECISIONS]
    assert "unsigned" in skipped[0].reason
    assert "own request" in skipped[1].reason


def request_event() -> ApprovalRequested:
    return ApprovalRequested(
        approval_id="ap-1",
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "bob"},
        idempotency_key="s1:1:0",
        tenant="acme",
        arguments_schema=SCHEMA,
    )
