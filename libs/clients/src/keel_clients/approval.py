"""Client of ``keel.approval.v1.ApprovalService``: the tool gateway checks approvals with it,
reviewers and operators list and resolve them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_clients.call import Caller, CallOptions
from keel_contracts.approvals import ApprovalStatus, ApprovalView, ReviewOutcome
from keel_contracts.errors import NotFound

STATUSES: dict[approval_pb2.ApprovalStatus.ValueType, ApprovalStatus] = {
    approval_pb2.APPROVAL_STATUS_PENDING: "pending",
    approval_pb2.APPROVAL_STATUS_APPROVED: "approved",
    approval_pb2.APPROVAL_STATUS_REJECTED: "rejected",
    approval_pb2.APPROVAL_STATUS_MODIFIED: "modified",
    approval_pb2.APPROVAL_STATUS_TIMED_OUT: "timed_out",
}
OUTCOMES: dict[ReviewOutcome, approval_pb2.Outcome.ValueType] = {
    "approve": approval_pb2.OUTCOME_APPROVE,
    "reject": approval_pb2.OUTCOME_REJECT,
    "modify": approval_pb2.OUTCOME_MODIFY,
}


class ApprovalClient:
    """Owns no channel. ``CallOptions.token`` is the reviewer's token, sent on every call."""

    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        self._caller = Caller(options or CallOptions())

    async def get(self, approval_id: str) -> ApprovalView | None:
        """None when the service knows no such request."""
        request = approval_pb2.GetRequest(id=approval_id)
        try:
            reply = await self._caller.unary(self._stub.Get, request)
        except NotFound:
            return None
        return view_from_proto(reply)

    async def list(self, include_resolved: bool = False) -> list[ApprovalView]:
        request = approval_pb2.ListRequest(include_resolved=include_resolved)
        reply = await self._caller.unary(self._stub.List, request)
        return [view_from_proto(a) for a in reply.approvals]

    async def resolve(
        self,
        approval_id: str,
        outcome: ReviewOutcome,
        *,
        reviewer: str = "",
        comment: str = "",
        modified_arguments_json: str = "",
    ) -> ApprovalView:
        request = approval_pb2.ResolveRequest(
            id=approval_id,
            outcome=OUTCOMES[outcome],
            reviewer=reviewer,
            comment=comment,
            modified_arguments_json=modified_arguments_json,
        )
        return view_from_proto(await self._caller.unary(self._stub.Resolve, request))

    async def watch(self) -> AsyncIterator[ApprovalView]:
        """Every request as it arrives or changes, until the caller stops iterating."""
        async for approval in self._caller.stream(self._stub.Watch, approval_pb2.WatchRequest()):
            yield view_from_proto(approval)


def view_from_proto(reply: approval_pb2.Approval) -> ApprovalView:
    return ApprovalView(
        id=reply.id,
        # An unknown status is not an approval: whoever checks one refuses it.
        status=STATUSES.get(reply.status, "unknown"),
        session_id=reply.session_id,
        agent_id=reply.agent_id,
        tool_name=reply.tool_name,
        arguments_json=reply.arguments_json,
        reasoning=reply.reasoning,
        consequences=reply.consequences,
        idempotency_key=reply.idempotency_key,
        created_at=reply.created_at,
        deadline=reply.deadline,
        decided_by=reply.decided_by,
        comment=reply.comment,
        modified_arguments_json=reply.modified_arguments_json,
        required_approvals=reply.required_approvals,
        approved_by=tuple(reply.approved_by),
        decision_json=reply.decision_json,
    )
