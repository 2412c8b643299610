"""MemoryPort over the memory service's ``Retrieve``."""

from __future__ import annotations

import grpc

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_agent_loop.adapters.convert import context_to_proto
from keel_agent_loop.adapters.metadata import trace_metadata
from keel_agent_loop.domain.models import RequestContext
from keel_core.grpc import call_with_errors


class GrpcMemory:
    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = memory_pb2_grpc.MemoryServiceStub(channel)
        self._timeout_s = timeout_s

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        request = memory_pb2.RetrieveRequest(
            context=context_to_proto(ctx), query=query, token_budget=budget
        )
        response = await call_with_errors(
            lambda: self._stub.Retrieve(
                request, timeout=self._timeout_s, metadata=trace_metadata(ctx)
            )
        )
        return [item.content for item in response.items if item.content]
