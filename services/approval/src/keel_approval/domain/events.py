"""Events <-> domain: the approval topics' payloads as the book's models and back. Pure, so the
use case (which publishes decisions and votes and reads requests back) and the rebuild share
one conversion."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from keel_approval.domain.fold import Intent
from keel_approval.domain.models import Approval, Decision, Outcome, Vote
from keel_approval.domain.rules import expires_at, required_approvals
from keel_contracts.approvals import arguments_hash
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalIntended,
    ApprovalRequested,
    ApprovalVoted,
)


def approval_from_event(
    event: ApprovalRequested,
    session_id: str,
    time: datetime,
    *,
    default_timeout_s: float = 3600.0,
    quorum: Mapping[str, int] | None = None,
    trace: str = "",
) -> Approval:
    return Approval(
        id=event.approval_id,
        session_id=session_id,
        agent_id=event.agent_id,
        tool_name=event.tool_name,
        arguments=event.arguments,
        reasoning=event.reasoning,
        consequences=event.consequences,
        idempotency_key=event.idempotency_key,
        created_at=time,
        deadline=event.deadline,
        expires_at=expires_at(event.deadline, time, default_timeout_s),
        required_approvals=required_approvals(quorum or {}, event.tool_name),
        arguments_schema=event.arguments_schema,
        trace=trace,
        tenant=event.tenant,
    )


def decision_from_event(event: ApprovalDecided, time: datetime) -> Decision:
    return Decision(
        approval_id=event.approval_id,
        status=event.outcome,
        reviewer=event.reviewer,
        comment=event.comment,
        modified_arguments=event.modified_arguments,
        decided_at=time,
        event=event,
    )


def decision_event(decided: Approval, *, valid_s: float = 24 * 3600.0) -> ApprovalDecided:
    """The decision as published, bound to the call it decides (session, tenant, agent, tool,
    key, argument hash) and usable until ``valid_s`` after it was made; unsigned (the use case
    signs it)."""
    if decided.status == "pending":
        raise ValueError("a pending approval has no decision")
    decided_at = decided.decided_at or decided.created_at
    if decided_at.tzinfo is None:
        decided_at = decided_at.replace(tzinfo=UTC)
    return ApprovalDecided(
        approval_id=decided.id,
        outcome=decided.status,
        reviewer=decided.decided_by,
        comment=decided.comment,
        modified_arguments=decided.modified_arguments,
        session_id=decided.session_id,
        tenant=decided.tenant,
        agent_id=decided.agent_id,
        tool_name=decided.tool_name,
        idempotency_key=decided.idempotency_key,
        arguments_hash=arguments_hash(decided.arguments),
        expires_at=(decided_at + timedelta(seconds=valid_s)).isoformat(),
    )


def vote_event(voted: Approval, comment: str = "") -> ApprovalVoted:
    """The event for a quorum vote: ``voted`` is the approval as ``decide`` returned it, still
    pending, its last approver being the reviewer who just voted."""
    if not voted.pending or not voted.approved_by:
        raise ValueError("only a pending approval with a new approval is a vote")
    return ApprovalVoted(
        approval_id=voted.id,
        reviewer=voted.approved_by[-1],
        comment=comment,
        approvals=list(voted.approved_by),
        required=voted.required_approvals,
        session_id=voted.session_id,
    )


def vote_from_event(event: ApprovalVoted) -> Vote:
    return Vote(
        approval_id=event.approval_id,
        approvals=tuple(event.approvals),
        session_id=event.session_id,
    )


def intent_event(
    approval: Approval,
    outcome: Outcome,
    reviewer: str,
    comment: str = "",
    modified_arguments: dict[str, Any] | None = None,
) -> ApprovalIntended:
    """A reviewer's action (or the sweeper's time-out) on ``approval``, as published; unsigned
    (the use case signs it)."""
    return ApprovalIntended(
        approval_id=approval.id,
        outcome=outcome,
        reviewer=reviewer,
        comment=comment,
        modified_arguments=modified_arguments,
        session_id=approval.session_id,
    )


def intent_from_event(event: ApprovalIntended, time: datetime, record: str) -> Intent:
    return Intent(
        approval_id=event.approval_id,
        outcome=event.outcome,
        reviewer=event.reviewer,
        comment=event.comment,
        modified_arguments=event.modified_arguments,
        session_id=event.session_id,
        at=time if time.tzinfo else time.replace(tzinfo=UTC),
        record=record,
    )
