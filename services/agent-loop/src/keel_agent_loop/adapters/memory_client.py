"""MemoryPort over the memory service's ``Retrieve`` and ``Store``."""

from __future__ import annotations

import grpc
from opentelemetry.trace import SpanKind

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_agent_loop.adapters.convert import context_to_proto
from keel_agent_loop.adapters.metadata import trace_metadata
from keel_agent_loop.domain.models import RequestContext
from keel_agent_loop.domain.ports import MemoryType
from keel_core import semconv
from keel_core.grpc import call_with_errors
from keel_core.tracing import start_span

MEMORY_TYPES: dict[MemoryType, memory_pb2.MemoryType.ValueType] = {
    "episodic": memory_pb2.MEMORY_TYPE_EPISODIC,
    "semantic": memory_pb2.MEMORY_TYPE_SEMANTIC,
    "procedural": memory_pb2.MEMORY_TYPE_PROCEDURAL,
}


class GrpcMemory:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = memory_pb2_grpc.MemoryServiceStub(channel)
        self._timeout_s = timeout_s

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        request = memory_pb2.RetrieveRequest(
            context=context_to_proto(ctx), query=query, token_budget=budget
        )
        attributes: dict[str, str | int] = {
            semconv.OPERATION: semconv.RETRIEVAL,
            semconv.DATA_SOURCE_ID: "keel.memory",
            semconv.CONVERSATION_ID: ctx.session_id,
            "keel.memory.token_budget": budget,
        }
        with start_span(
            "retrieval keel.memory", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = await call_with_errors(
                lambda: self._stub.Retrieve(
                    request, timeout=self._timeout_s, metadata=trace_metadata(ctx)
                )
            )
            items = [item.content for item in response.items if item.content]
            span.set_attribute("keel.memory.items", len(items))
            return items

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        memory_type: MemoryType,
        metadata: dict[str, str],
    ) -> str:
        request = memory_pb2.StoreRequest(
            context=context_to_proto(ctx),
            type=MEMORY_TYPES[memory_type],
            content=content,
            metadata=metadata,
        )
        attributes = {"keel.memory.type": memory_type, semconv.CONVERSATION_ID: ctx.session_id}
        with start_span("store keel.memory", kind=SpanKind.CLIENT, attributes=attributes):
            response = await call_with_errors(
                lambda: self._stub.Store(
                    request, timeout=self._timeout_s, metadata=trace_metadata(ctx)
                )
            )
            return str(response.id)
