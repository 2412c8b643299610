"""Approval requests as the approval service reports them to its callers, and the one
definition of what a signed approval record is: how it is signed, and what a reader checks
before acting on one (signature, expiry, and the call it is bound to)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from keel_contracts.canonical import canonical_json, sha256_hex
from keel_contracts.events.types import (
    ApprovalDecided,
    ApprovalIntended,
    ApprovalRequested,
    ApprovalVoted,
)

# "unknown": a status this client does not know; never an approval.
ApprovalStatus = Literal["pending", "approved", "rejected", "modified", "timed_out", "unknown"]
ReviewOutcome = Literal["approve", "reject", "modify"]
SignedT = TypeVar("SignedT", ApprovalDecided, ApprovalVoted, ApprovalIntended)


class ApprovalView(BaseModel):
    """Arguments stay the JSON text the service sent: whoever checks them compares them
    canonically."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: ApprovalStatus
    session_id: str = ""
    agent_id: str = ""
    tool_name: str = ""
    arguments_json: str = ""
    reasoning: str = ""
    consequences: str = ""
    idempotency_key: str = ""
    created_at: str = ""
    deadline: str = ""
    decided_by: str = ""
    comment: str = ""
    modified_arguments_json: str = ""
    required_approvals: int = 0
    approved_by: tuple[str, ...] = ()
    # The approval service's signed decision (an ``ApprovalDecided`` payload as JSON, its
    # ``signature`` included) for a decided request; "" when pending or unsigned. The tool
    # gateway verifies this, not the fields above, which any replica's book could hold wrong.
    decision_json: str = ""


class SignatureVerifier(Protocol):
    """Checks an Ed25519 signature (``keel_core.trust.Verifier``); a Protocol so the pure
    layers can verify without importing the chassis."""

    def verify(self, data: bytes, signature: str) -> bool: ...


class SignatureSigner(Protocol):
    """Signs bytes (``keel_core.trust.Signer``); only the approval service holds one."""

    def sign(self, data: bytes) -> str: ...


def signed_bytes(event: ApprovalDecided | ApprovalVoted | ApprovalIntended) -> bytes:
    """What is signed: the event type and every payload field but the signature, as canonical
    JSON, so a field changed, added or moved to another event type breaks the signature."""
    fields = event.model_dump(mode="json", exclude={"signature"})
    return canonical_json({"type": event.event_type, "data": fields}).encode()


def sign_event(event: SignedT, signer: SignatureSigner) -> SignedT:
    """The event with its ``signature`` set."""
    unsigned = event.model_copy(update={"signature": ""})
    return unsigned.model_copy(update={"signature": signer.sign(signed_bytes(unsigned))})


def arguments_hash(arguments: dict[str, Any]) -> str:
    """The hash a decision binds: of the arguments the agent asked for, as canonical JSON."""
    return sha256_hex(canonical_json(arguments))


def signature_problem(
    event: ApprovalDecided | ApprovalVoted | ApprovalIntended,
    verifier: SignatureVerifier,
    now: datetime | None = None,
) -> str | None:
    """Why the event may not be trusted (unsigned, badly signed, or — for a decision, when
    ``now`` is given — expired), or None. Whoever *acts* on a decision passes ``now``; the
    approval service's own replicas, which only record history, do not."""
    if not event.signature:
        return "unsigned approval record"
    if not verifier.verify(signed_bytes(event), event.signature):
        return "approval record with an invalid signature"
    if isinstance(event, ApprovalDecided) and now is not None:
        expiry = _instant(event.expires_at)
        if expiry is None:
            return "approval decision without a readable expiry"
        if expiry <= (now if now.tzinfo else now.replace(tzinfo=UTC)):
            return f"approval decision expired at {event.expires_at}"
    return None


def binding_problem(
    decision: ApprovalDecided,
    *,
    session_id: str,
    tenant: str,
    tool_name: str,
    idempotency_key: str,
    arguments: dict[str, Any],
    agent_id: str | None = None,
) -> str | None:
    """Why a (verified) decision does not cover this call, or None: it names another session,
    tenant, agent, tool, key or other arguments."""
    expected = {
        "session": (decision.session_id, session_id),
        "tenant": (decision.tenant, tenant),
        "tool": (decision.tool_name, tool_name),
        "idempotency key": (decision.idempotency_key, idempotency_key),
        "arguments": (decision.arguments_hash, arguments_hash(arguments)),
    }
    if agent_id is not None:
        expected["agent"] = (decision.agent_id, agent_id)
    for what, (bound, actual) in expected.items():
        if bound != actual:
            return f"approval {decision.approval_id!r} was given for another {what}"
    return None


def _instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def decision_for(
    request: ApprovalRequested,
    session_id: str,
    outcome: Literal["approved", "rejected", "modified", "timed_out"],
    reviewer: str,
    expires_at: datetime,
    *,
    comment: str = "",
    modified_arguments: dict[str, Any] | None = None,
) -> ApprovalDecided:
    """An (unsigned) decision bound to ``request``: what a reviewer's decision names. Fakes and
    tests that play the approval service build theirs with it."""
    return ApprovalDecided(
        approval_id=request.approval_id,
        outcome=outcome,
        reviewer=reviewer,
        comment=comment,
        modified_arguments=modified_arguments,
        session_id=session_id,
        tenant=request.tenant,
        agent_id=request.agent_id,
        tool_name=request.tool_name,
        idempotency_key=request.idempotency_key,
        arguments_hash=arguments_hash(request.arguments),
        expires_at=expires_at.isoformat(),
    )
