"""Protobuf and event <-> domain conversions for the approval service."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from keel.approval.v1 import approval_pb2
from keel_approval.domain.models import Approval, ApprovalStatus, Decision, Outcome, Vote
from keel_approval.domain.rules import expires_at, required_approvals
from keel_contracts.canonical import canonical_json
from keel_contracts.errors import InvalidArgument
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted

STATUS_TO_PROTO: dict[ApprovalStatus, approval_pb2.ApprovalStatus.ValueType] = {
    "pending": approval_pb2.APPROVAL_STATUS_PENDING,
    "approved": approval_pb2.APPROVAL_STATUS_APPROVED,
    "rejected": approval_pb2.APPROVAL_STATUS_REJECTED,
    "modified": approval_pb2.APPROVAL_STATUS_MODIFIED,
    "timed_out": approval_pb2.APPROVAL_STATUS_TIMED_OUT,
}

OUTCOME_FROM_PROTO: dict[int, Outcome] = {
    approval_pb2.OUTCOME_APPROVE: "approve",
    approval_pb2.OUTCOME_REJECT: "reject",
    approval_pb2.OUTCOME_MODIFY: "modify",
}


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
    )


def decision_from_event(event: ApprovalDecided, time: datetime) -> Decision:
    return Decision(
        approval_id=event.approval_id,
        status=event.outcome,
        reviewer=event.reviewer,
        comment=event.comment,
        modified_arguments=event.modified_arguments,
        decided_at=time,
    )


def decision_event(decided: Approval) -> ApprovalDecided:
    if decided.status == "pending":
        raise ValueError("a pending approval has no decision")
    return ApprovalDecided(
        approval_id=decided.id,
        outcome=decided.status,
        reviewer=decided.decided_by,
        comment=decided.comment,
        modified_arguments=decided.modified_arguments,
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
    )


def vote_from_event(event: ApprovalVoted) -> Vote:
    return Vote(approval_id=event.approval_id, approvals=tuple(event.approvals))


def outcome_from_proto(value: int) -> Outcome:
    try:
        return OUTCOME_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"outcome must be APPROVE, REJECT or MODIFY (got {value})") from None


def arguments_from_json(text: str) -> object:
    """The reviewer's modified arguments: None when absent; the book checks it is an object."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"modified_arguments_json is not JSON: {exc}") from exc


def approval_to_proto(approval: Approval) -> approval_pb2.Approval:
    modified = approval.modified_arguments
    return approval_pb2.Approval(
        id=approval.id,
        session_id=approval.session_id,
        agent_id=approval.agent_id,
        tool_name=approval.tool_name,
        arguments_json=canonical_json(approval.arguments),
        reasoning=approval.reasoning,
        status=STATUS_TO_PROTO[approval.status],
        created_at=approval.created_at.isoformat(),
        # The effective deadline: the requester's, or the default time-out's.
        deadline=approval.deadline
        or (approval.expires_at.isoformat() if approval.expires_at else ""),
        decided_by=approval.decided_by,
        comment=approval.comment,
        modified_arguments_json=canonical_json(modified) if modified is not None else "",
        idempotency_key=approval.idempotency_key,
        consequences=approval.consequences,
        required_approvals=approval.required_approvals,
        approved_by=list(approval.approved_by),
    )
