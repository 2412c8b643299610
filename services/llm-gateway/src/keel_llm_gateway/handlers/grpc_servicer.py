"""gRPC front of the gateway: protobuf in, a ``Completions`` call, protobuf out (every
completion is counted, priced and audited there)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_llm_gateway.domain.models import Completion
from keel_llm_gateway.handlers.mapping import completion_to_proto, request_from_proto
from keel_llm_gateway.usecases.completions import Completions


class LLMGatewayServicer(llm_pb2_grpc.LLMGatewayServicer):
    def __init__(self, completions: Completions) -> None:
        self._completions = completions

    async def Complete(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.CompleteResponse:
        completion = await self._completions.complete(
            request_from_proto(request), trace=request.context.traceparent
        )
        return completion_to_proto(completion)

    async def CompleteStream(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[llm_pb2.CompleteChunk]:
        """Text deltas as the provider produces them, then a chunk with the whole response."""
        events = self._completions.stream(
            request_from_proto(request), trace=request.context.traceparent
        )
        async for event in events:
            if isinstance(event, Completion):
                yield llm_pb2.CompleteChunk(final=completion_to_proto(event))
            else:
                yield llm_pb2.CompleteChunk(delta=event.content)
