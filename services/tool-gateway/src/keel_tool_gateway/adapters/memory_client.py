"""The memory port over gRPC: ``keel.memory.v1.MemoryService`` Store/Retrieve with a deadline."""

from __future__ import annotations

import grpc
from pydantic import BaseModel, ConfigDict, Field

from keel.common.v1 import common_pb2
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_core.grpc import call_with_errors
from keel_tool_gateway.domain.models import MemoryHit, MemoryKind, RequestContext

TO_PROTO: dict[MemoryKind, memory_pb2.MemoryType.ValueType] = {
    "episodic": memory_pb2.MEMORY_TYPE_EPISODIC,
    "semantic": memory_pb2.MEMORY_TYPE_SEMANTIC,
    "procedural": memory_pb2.MEMORY_TYPE_PROCEDURAL,
}
FROM_PROTO: dict[int, MemoryKind] = {value: name for name, value in TO_PROTO.items()}


class MemorySettings(BaseModel):
    """Where the memory tools reach the memory service (env ``KEEL_TOOL_GATEWAY_MEMORY__…``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "127.0.0.1:50055"
    # Deadline of each Store/Retrieve; past it the tool call fails with an error.
    timeout_s: float = Field(default=3.0, gt=0)


class MemoryClient:
    """Owns no channel: the composition root creates it once and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = memory_pb2_grpc.MemoryServiceStub(channel)
        self._timeout_s = timeout_s

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        *,
        kind: MemoryKind,
        metadata: dict[str, str],
    ) -> str:
        request = memory_pb2.StoreRequest(
            context=_context(ctx), type=TO_PROTO[kind], content=content, metadata=metadata
        )
        reply: memory_pb2.StoreResponse = await call_with_errors(
            lambda: self._stub.Store(request, timeout=self._timeout_s)
        )
        return reply.id

    async def search(
        self,
        ctx: RequestContext,
        query: str,
        *,
        kinds: list[MemoryKind],
        top_k: int,
        token_budget: int,
    ) -> list[MemoryHit]:
        request = memory_pb2.RetrieveRequest(
            context=_context(ctx),
            query=query,
            types=[TO_PROTO[kind] for kind in kinds],
            top_k=top_k,
            token_budget=token_budget,
        )
        reply: memory_pb2.RetrieveResponse = await call_with_errors(
            lambda: self._stub.Retrieve(request, timeout=self._timeout_s)
        )
        return [
            MemoryHit(
                id=item.id,
                type=FROM_PROTO.get(item.type, "semantic"),
                content=item.content,
                score=item.score,
                metadata=dict(item.metadata),
            )
            for item in reply.items
        ]


def _context(ctx: RequestContext) -> common_pb2.RequestContext:
    return common_pb2.RequestContext(
        session_id=ctx.session_id,
        agent_id=ctx.agent_id,
        tenant=ctx.tenant,
        agent_profile=ctx.agent_profile,
        traceparent=ctx.traceparent,
    )
