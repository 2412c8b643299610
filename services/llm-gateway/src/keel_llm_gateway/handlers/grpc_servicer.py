"""gRPC front of the gateway: every completion is counted, priced and audited.

The audit record carries who asked, which model answered, tokens, cost, whether it was a cache
hit and the names of the tools the model called: never message contents, which may hold user
data or secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.tracing import set_attributes
from keel_llm_gateway.domain.gateway import Gateway
from keel_llm_gateway.domain.models import Completion
from keel_llm_gateway.handlers.mapping import completion_to_proto, request_from_proto
from keel_llm_gateway.metrics import LLMMetrics

AUDIT_ACTION = "llm.completion"


class LLMGatewayServicer(llm_pb2_grpc.LLMGatewayServicer):
    def __init__(self, gateway: Gateway, audit: AuditEmitter, metrics: LLMMetrics) -> None:
        self._gateway = gateway
        self._audit = audit
        self._metrics = metrics

    async def Complete(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.CompleteResponse:
        completion = await self._gateway.complete(request_from_proto(request))
        await self._account(request, completion)
        return completion_to_proto(completion)

    async def CompleteStream(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[llm_pb2.CompleteChunk]:
        """Text deltas as the provider produces them, then a chunk with the whole response."""
        async for event in self._gateway.stream(request_from_proto(request)):
            if isinstance(event, Completion):
                await self._account(request, event)
                yield llm_pb2.CompleteChunk(final=completion_to_proto(event))
            else:
                yield llm_pb2.CompleteChunk(delta=event.content)

    async def _account(self, request: llm_pb2.CompleteRequest, completion: Completion) -> None:
        usage = completion.usage
        prompt = usage.prompt_tokens if usage else 0
        generated = usage.completion_tokens if usage else 0
        cost = usage.cost_usd if usage else 0.0
        # The server span, in the GenAI conventions' terms (the provider and model the
        # router chose are known only here).
        set_attributes(
            {
                semconv.OPERATION: semconv.CHAT,
                semconv.PROVIDER: completion.provider,
                semconv.RESPONSE_MODEL: completion.model,
                semconv.USAGE_INPUT_TOKENS: prompt,
                semconv.USAGE_OUTPUT_TOKENS: generated,
                semconv.RESPONSE_FINISH_REASONS: (completion.finish_reason,),
                "keel.llm.cached": completion.cached,
                "keel.llm.cost_usd": cost,
            }
        )
        if not completion.cached:  # a hit spent nothing
            self._metrics.tokens.labels(completion.model, "prompt").inc(prompt)
            self._metrics.tokens.labels(completion.model, "completion").inc(generated)
            self._metrics.cost.labels(completion.model).inc(cost)
        ctx = request.context
        await self._audit.record(
            AUDIT_ACTION,
            actor=ctx.agent_id or "unknown",
            subject=completion.model,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                "model": completion.model,
                "provider": completion.provider,
                "tenant": ctx.tenant,
                "prompt_tokens": prompt,
                "completion_tokens": generated,
                "usage_estimated": bool(usage and usage.estimated),
                "cost_usd": cost,
                "finish_reason": completion.finish_reason,
                "cached": completion.cached,
                "tool_calls": [call.name for call in completion.message.tool_calls],
            },
        )
