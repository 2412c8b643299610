"""gRPC front of the approval book. Resolving goes through the ``Decider`` (publish before
record); the reviewer is whoever the call's bearer token names (see ``auth``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.decisions import Decider
from keel_approval.handlers.mapping import (
    approval_to_proto,
    arguments_from_json,
    outcome_from_proto,
)
from keel_approval.metrics import ApprovalMetrics
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Publisher


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):
    def __init__(
        self,
        book: ApprovalBook,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: ApprovalMetrics,
        *,
        auth: ReviewerAuth | None = None,
        decider: Decider | None = None,
    ) -> None:
        """``decider`` is shared with the deadline sweeper so both take the same lock; without
        one, a decider of its own is built over ``publisher``."""
        self._book = book
        self._decider = decider or Decider(book, publisher, audit, metrics)
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
