"""gRPC front of the approval book: reads come from the book; resolving authenticates the
reviewer (whoever the call's bearer token names, see ``auth``) and goes through the
``Decider`` (publish before record)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.mapping import (
    approval_to_proto,
    arguments_from_json,
    outcome_from_proto,
)
from keel_approval.usecases.decisions import Decider


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):
    def __init__(
        self, book: ApprovalBook, decider: Decider, *, auth: ReviewerAuth | None = None
    ) -> None:
        """``decider`` is shared with the deadline sweeper and the web inbox so all take the
        same lock."""
        self._book = book
        self._decider = decider
        self._auth = auth or ReviewerAuth({})

    async def List(
        self, request: approval_pb2.ListRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.ListResponse:
        approvals = self._book.list(include_resolved=request.include_resolved)
        return approval_pb2.ListResponse(approvals=[approval_to_proto(a) for a in approvals])

    async def Get(
        self, request: approval_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.Approval:
        return approval_to_proto(self._book.get(request.id))

    async def Resolve(
        self, request: approval_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> approval_pb2.Approval:
        reviewer = self._auth.reviewer(context.invocation_metadata(), request.reviewer)
        outcome = outcome_from_proto(request.outcome)
        modified = arguments_from_json(request.modified_arguments_json)
        decided = await self._decider.resolve(
            request.id, outcome, reviewer, request.comment, modified
        )
        return approval_to_proto(decided)

    async def Watch(
        self, request: approval_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[approval_pb2.Approval]:
        """The pending requests first, then every change as it happens."""
        with self._book.watch() as watcher:
            for approval in self._book.list():
                yield approval_to_proto(approval)
            while True:
                yield approval_to_proto(await watcher.next())
