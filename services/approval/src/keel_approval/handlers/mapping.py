"""Protobuf and JSON <-> domain conversions for the approval service (events <-> domain are in
``domain/events.py``: the use case publishes them)."""

from __future__ import annotations

import json

from keel.approval.v1 import approval_pb2
from keel_approval.domain.models import Approval, ApprovalStatus, Outcome
from keel_contracts.canonical import canonical_json
from keel_contracts.errors import InvalidArgument

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


def outcome_from_proto(value: int) -> Outcome:
    try:
        return OUTCOME_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(f"outcome must be APPROVE, REJECT or MODIFY (got {value})") from None


def arguments_from_json(text: str) -> object:
    """The reviewer's modified arguments: None when absent; the book checks it is an object.
    JSON nested deeper than the parser's recursion limit is refused like any other bad JSON,
    not left to crash the call (a fuzz finding)."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
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
        decision_json=approval.decision_json,
    )
