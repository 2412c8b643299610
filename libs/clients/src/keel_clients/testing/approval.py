"""A fake approval service: requests in a dict, resolved by ``Resolve`` or by the test."""

from __future__ import annotations

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_clients.approval import OUTCOMES, STATUSES
from keel_contracts.approvals import ApprovalStatus, ApprovalView

TO_STATUS = {name: value for value, name in STATUSES.items()}
FROM_OUTCOME = {value: name for name, value in OUTCOMES.items()}
DECIDED: dict[str, ApprovalStatus] = {
    "approve": "approved",
    "reject": "rejected",
    "modify": "modified",
}


class FakeApprovalService(approval_pb2_grpc.ApprovalServiceServicer):
    def __init__(self, approvals: list[ApprovalView] | None = None) -> None:
        self.approvals: dict[str, ApprovalView] = {a.id: a for a in approvals or []}
        self.tokens_seen: list[str] = []

    async def Get(
        self, request: approval_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.Approval:
        self._note_token(context)
        approval = self.approvals.get(request.id)
        if approval is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no approval {request.id}")
        assert approval is not None
        return view_to_proto(approval)

    async def List(
        self, request: approval_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ListResponse:
        self._note_token(context)
        shown = [
            a for a in self.approvals.values() if request.include_resolved or a.status == "pending"
        ]
        return approval_pb2.ListResponse(approvals=[view_to_proto(a) for a in shown])

    async def Resolve(
        self, request: approval_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.Approval:
        self._note_token(context)
        approval = self.approvals.get(request.id)
        outcome = FROM_OUTCOME.get(request.outcome)
        if approval is None or outcome is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no approval {request.id}")
        assert approval is not None
        assert outcome is not None
        decided = approval.model_copy(
            update={
                "status": DECIDED[outcome],
                "decided_by": request.reviewer,
                "comment": request.comment,
                "modified_arguments_json": request.modified_arguments_json,
            }
        )
        self.approvals[decided.id] = decided
        return view_to_proto(decided)

    def _note_token(self, context: grpc.aio.ServicerContext) -> None:
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                self.tokens_seen.append(str(value))


def view_to_proto(view: ApprovalView) -> approval_pb2.Approval:
    fields = view.model_dump(exclude={"status", "approved_by"})
    return approval_pb2.Approval(
        status=TO_STATUS.get(view.status, approval_pb2.APPROVAL_STATUS_UNSPECIFIED),
        approved_by=list(view.approved_by),
        **fields,
    )
