"""The approval port over gRPC: ``keel.approval.v1.ApprovalService/Get`` with a deadline."""

from __future__ import annotations

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_contracts.errors import NotFound
from keel_core.grpc import call_with_errors
from keel_tool_gateway.domain.models import ApprovalRecord, ApprovalStatus

_FROM_PROTO: dict[int, ApprovalStatus] = {
    approval_pb2.APPROVAL_STATUS_PENDING: "pending",
    approval_pb2.APPROVAL_STATUS_APPROVED: "approved",
    approval_pb2.APPROVAL_STATUS_REJECTED: "rejected",
    approval_pb2.APPROVAL_STATUS_MODIFIED: "modified",
    approval_pb2.APPROVAL_STATUS_TIMED_OUT: "timed_out",
}


class ApprovalClient:
    """Owns no channel: the composition root creates it once and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        self._timeout_s = timeout_s

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        request = approval_pb2.GetRequest(id=approval_id)
        try:
            reply: approval_pb2.Approval = await call_with_errors(
                lambda: self._stub.Get(request, timeout=self._timeout_s)
            )
        except NotFound:
            return None
        return ApprovalRecord(
            id=reply.id,
            # An unknown status is not an approval: the domain refuses it.
            status=_FROM_PROTO.get(reply.status, "unknown"),
            tool_name=reply.tool_name,
            idempotency_key=reply.idempotency_key,
            arguments_json=reply.arguments_json,
            modified_arguments_json=reply.modified_arguments_json,
            decided_by=reply.decided_by,
            comment=reply.comment,
        )
