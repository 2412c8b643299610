"""gRPC front of the gateway: every completion is timed, counted, priced and audited.

The audit record carries who asked, which model answered, tokens, cost and the names of the
tools the model called: never message contents, which may hold user data or secrets.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from itertools import pairwise

import grpc

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_core.audit import AuditEmitter
from keel_llm_gateway.domain.gateway import Gateway
from keel_llm_gateway.domain.models import Completion
from keel_llm_gateway.handlers.mapping import completion_to_proto, request_from_proto
from keel_llm_gateway.metrics import LLMMetrics

AUDIT_ACTION = "llm.completion"
STREAM_CHUNKS = 3


class LLMGatewayServicer(llm_pb2_grpc.LLMGatewayServicer):
    def __init__(self, gateway: Gateway, audit: AuditEmitter, metrics: LLMMetrics) -> None:
        self._gateway = gateway
        self._audit = audit
        self._metrics = metrics

    async def Complete(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.CompleteResponse:
        return completion_to_proto(await self._complete(request))

    async def CompleteStream(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[llm_pb2.CompleteChunk]:
        """The whole completion, replayed as a few content chunks and a final chunk that
        carries the full response. Token-by-token streaming from providers comes later; the
        contract already allows it."""
        completion = await self._complete(request)
        for piece in split_text(completion.message.content, STREAM_CHUNKS):
            yield llm_pb2.CompleteChunk(delta=piece)
        yield llm_pb2.CompleteChunk(final=completion_to_proto(completion))

    async def _complete(self, request: llm_pb2.CompleteRequest) -> Completion:
        domain_request = request_from_proto(request)
        provider = self._gateway.provider.name
        started = time.perf_counter()
        try:
            completion = await self._gateway.complete(domain_request)
        except Exception as exc:
            self._metrics.errors.labels(provider, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.latency.labels(provider).observe(time.perf_counter() - started)
        await self._account(request, completion)
        return completion

    async def _account(self, request: llm_pb2.CompleteRequest, completion: Completion) -> None:
        usage = completion.usage
        prompt = usage.prompt_tokens if usage else 0
        generated = usage.completion_tokens if usage else 0
        cost = usage.cost_usd if usage else 0.0
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
                "prompt_tokens": prompt,
                "completion_tokens": generated,
                "usage_estimated": bool(usage and usage.estimated),
                "cost_usd": cost,
                "finish_reason": completion.finish_reason,
                "cached": completion.cached,
                "tool_calls": [call.name for call in completion.message.tool_calls],
            },
        )


def split_text(text: str, parts: int) -> list[str]:
    """At most ``parts`` pieces cut at word starts; joined, they give back ``text`` exactly."""
    if not text:
        return []
    words = re.findall(r"\s*\S+\s*", text) or [text]
    count = min(parts, len(words))
    bounds = [len(words) * i // count for i in range(count + 1)]
    return ["".join(words[start:end]) for start, end in pairwise(bounds)]
