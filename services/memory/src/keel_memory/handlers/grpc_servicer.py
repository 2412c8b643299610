"""gRPC front of the memory service: protobuf in, a ``MemoryService`` call, protobuf out.

Each call is scoped to the request context's tenant (and agent, with ``scope_by_agent``); an
empty tenant is ``default``. Which tenant a caller may claim is decided where callers are
authenticated, not here."""

from __future__ import annotations

import grpc

from keel.common.v1 import common_pb2
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_memory.domain.models import MemoryScope
from keel_memory.domain.rules import scope_of
from keel_memory.handlers.mapping import (
    chunks_from_proto,
    filters_from_proto,
    older_than_from_proto,
    retrieval_to_proto,
    type_budgets_from_proto,
    type_from_proto,
    types_from_proto,
)
from keel_memory.usecase import MemoryService


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, service: MemoryService, *, scope_by_agent: bool = False) -> None:
        self._service = service
        self._scope_by_agent = scope_by_agent

    def _scope(self, ctx: common_pb2.RequestContext) -> MemoryScope:
        return scope_of(ctx.tenant, ctx.agent_id, by_agent=self._scope_by_agent)

    async def Store(
        self, request: memory_pb2.StoreRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.StoreResponse:
        ctx = request.context
        if request.source or request.chunks or request.replace:
            return await self._store_batch(request)
        entry = await self._service.store(
            type_from_proto(request.type),
            request.content,
            metadata=dict(request.metadata),
            session_id=ctx.session_id,
            actor=ctx.agent_id,
            trace=ctx.traceparent,
            scope=self._scope(ctx),
        )
        return memory_pb2.StoreResponse(id=entry.id)

    async def _store_batch(self, request: memory_pb2.StoreRequest) -> memory_pb2.StoreResponse:
        """The batch form of Store (a document's chunks); ``content`` has no place in it."""
        if request.content:
            raise InvalidArgument("a batch Store (source, chunks) takes no content")
        ctx = request.context
        outcome = await self._service.store_batch(
            type_from_proto(request.type),
            request.source,
            chunks_from_proto(request.chunks),
            replace=request.replace,
            keep_ids=list(request.keep_ids),
            metadata=dict(request.metadata),
            session_id=ctx.session_id,
            actor=ctx.agent_id,
            trace=ctx.traceparent,
            scope=self._scope(ctx),
        )
        return memory_pb2.StoreResponse(
            ids=outcome.ids,
            stored=outcome.stored,
            unchanged=outcome.unchanged,
            removed=outcome.removed,
        )

    async def Retrieve(
        self, request: memory_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.RetrieveResponse:
        retrieval = await self._service.retrieve(
            request.query,
            types=types_from_proto(request.types),
            token_budget=request.token_budget,
            top_k=request.top_k,
            filters=filters_from_proto(request.filters),
            type_budgets=type_budgets_from_proto(request.type_budgets),
            scope=self._scope(request.context),
        )
        return retrieval_to_proto(retrieval)

    async def Forget(
        self, request: memory_pb2.ForgetRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.ForgetResponse:
        older_than = older_than_from_proto(request.older_than_s)
        deleted = await self._service.forget(
            ids=list(request.ids),
            session_id=request.session_id,
            older_than=older_than,
            types=types_from_proto(request.types),
            actor=request.context.agent_id,
            trace=request.context.traceparent,
            scope=self._scope(request.context),
        )
        return memory_pb2.ForgetResponse(deleted=deleted)
