"""gRPC front of the memory service: every store and forget is audited."""

from __future__ import annotations

from datetime import timedelta

import grpc

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_core.audit import AuditEmitter
from keel_memory.domain.service import MemoryService
from keel_memory.handlers.mapping import (
    retrieval_to_proto,
    type_budgets_from_proto,
    type_from_proto,
    types_from_proto,
)
from keel_memory.metrics import MemoryMetrics


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, service: MemoryService, audit: AuditEmitter, metrics: MemoryMetrics) -> None:
        self._service = service
        self._audit = audit
        self._metrics = metrics

    async def Store(
        self, request: memory_pb2.StoreRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.StoreResponse:
        ctx = request.context
        entry = await self._service.store(
            type_from_proto(request.type),
            request.content,
            metadata=dict(request.metadata),
            session_id=ctx.session_id,
        )
        self._metrics.stored.labels(entry.type).inc()
        await self._audit.record(
            "memory.store",
            actor=ctx.agent_id or "unknown",
            subject=entry.id,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={"id": entry.id, "type": entry.type, "session": entry.session_id},
        )
        return memory_pb2.StoreResponse(id=entry.id)

    async def Retrieve(
        self, request: memory_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.RetrieveResponse:
        retrieval = await self._service.retrieve(
            request.query,
            types=types_from_proto(request.types),
            token_budget=request.token_budget,
            top_k=request.top_k,
            filters=dict(request.filters),
            type_budgets=type_budgets_from_proto(request.type_budgets),
        )
        self._metrics.retrieved.inc(len(retrieval.items))
        self._metrics.budget_utilisation.observe(retrieval.tokens_used / retrieval.token_budget)
        return retrieval_to_proto(retrieval)

    async def Forget(
        self, request: memory_pb2.ForgetRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.ForgetResponse:
        if request.older_than_s < 0:
            raise InvalidArgument("older_than_s must not be negative")
        types = types_from_proto(request.types)
        deleted = await self._service.forget(
            ids=list(request.ids),
            session_id=request.session_id,
            older_than=timedelta(seconds=request.older_than_s) if request.older_than_s else None,
            types=types,
        )
        self._metrics.forgotten.inc(deleted)
        await self._audit.record(
            "memory.forget",
            actor=request.context.agent_id or "unknown",
            subject=request.session_id or ("age" if request.older_than_s else "ids"),
            trace=request.context.traceparent,
            session_id=request.session_id,
            details={
                "count": deleted,
                "ids": list(request.ids),
                "session": request.session_id,
                "older_than_s": request.older_than_s,
                "types": list(types),
            },
        )
        return memory_pb2.ForgetResponse(deleted=deleted)
