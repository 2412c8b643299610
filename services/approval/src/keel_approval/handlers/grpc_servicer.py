"""gRPC front of the approval book. A decision is published to ``keel.approval.decisions``
before the book records it, so the book never shows a decision the agent will not hear of."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.mapping import (
    approval_to_proto,
    arguments_from_json,
    decision_event,
    outcome_from_proto,
)
from keel_approval.metrics import ApprovalMetrics
from keel_core.audit import AuditEmitter
from keel_core.bus.producer import Publisher
from keel_core.errors import Unavailable
from keel_core.events import Envelope
from keel_core.topics import APPROVAL_DECISIONS

SOURCE = "approval"


class ApprovalServicer(approval_pb2_grpc.ApprovalServiceServicer):
    def __init__(
        self,
        book: ApprovalBook,
        publisher: Publisher,
        audit: AuditEmitter,
        metrics: ApprovalMetrics,
    ) -> None:
        self._book = book
        self._publisher = publisher
        self._audit = audit
        self._metrics = metrics
        # One decision at a time: between deciding and recording there is a publish to await,
        # and two reviewers must not both get their decision published for one request.
        self._resolving = asyncio.Lock()

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
        outcome = outcome_from_proto(request.outcome)
        modified = arguments_from_json(request.modified_arguments_json)
        async with self._resolving:
            decided = self._book.decide(
                request.id, outcome, request.reviewer, request.comment, modified
            )
            envelope = Envelope.wrap(
                decision_event(decided), source=SOURCE, session_id=decided.session_id
            )
            try:
                await self._publisher.publish(APPROVAL_DECISIONS, envelope, key=decided.session_id)
            except Exception as exc:
                raise Unavailable(f"decision not published, try again: {exc}") from exc
            self._book.record(decided)
        self._metrics.decided.labels(decided.status).inc()
        await self._audit.record(
            "approval.decided",
            actor=decided.decided_by,
            subject=decided.id,
            session_id=decided.session_id,
            details={
                "reviewer": decided.decided_by,
                "outcome": decided.status,
                "tool": decided.tool_name,
                "comment": decided.comment,
                "modified_arguments": decided.modified_arguments,
            },
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
