"""LLMPort over the llm-gateway's ``Complete``."""

from __future__ import annotations

import asyncio
import logging

import grpc
from opentelemetry.trace import Span, SpanKind

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_agent_loop.adapters.convert import (
    context_to_proto,
    message_to_proto,
    reply_from_proto,
    spec_to_proto,
)
from keel_agent_loop.adapters.metadata import trace_metadata
from keel_agent_loop.domain.models import ChatMessage, LLMReply, RequestContext, ToolSpec
from keel_contracts.errors import Unavailable
from keel_core import semconv
from keel_core.grpc import call_with_errors
from keel_core.tracing import start_span

log = logging.getLogger(__name__)


class GrpcLLM:
    """Retries UNAVAILABLE a few times (the gateway restarting, a blip); a deadline is not
    retried, since a call that took ``timeout_s`` will likely take it again."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        timeout_s: float,
        retries: int = 2,
        backoff_s: float = 0.5,
    ) -> None:
        self._stub = llm_pb2_grpc.LLMGatewayStub(channel)
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s

    async def complete(
        self, ctx: RequestContext, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> LLMReply:
        request = llm_pb2.CompleteRequest(
            context=context_to_proto(ctx),
            messages=[message_to_proto(m) for m in messages],
            tools=[spec_to_proto(t) for t in tools],
        )
        attributes = {
            semconv.OPERATION: semconv.CHAT,
            semconv.PROVIDER: "keel.llm-gateway",
            semconv.CONVERSATION_ID: ctx.session_id,
        }
        with start_span("chat", kind=SpanKind.CLIENT, attributes=attributes) as span:
            reply = await self._complete_with_retries(request, ctx)
            _describe(span, reply)
            return reply

    async def _complete_with_retries(
        self, request: llm_pb2.CompleteRequest, ctx: RequestContext
    ) -> LLMReply:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                response = await call_with_errors(
                    lambda: self._stub.Complete(
                        request, timeout=self._timeout_s, metadata=trace_metadata(ctx)
                    )
                )
                return reply_from_proto(response)
            except Unavailable as exc:
                if attempt == self._retries:
                    raise
                log.warning("llm-gateway unavailable (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def _describe(span: Span, reply: LLMReply) -> None:
    """GenAI attributes known only from the answer (the gateway picks the model)."""
    if not span.is_recording():
        return
    if reply.model:
        span.update_name(f"chat {reply.model}")
        span.set_attribute(semconv.RESPONSE_MODEL, reply.model)
    span.set_attribute(semconv.USAGE_INPUT_TOKENS, reply.usage.prompt_tokens)
    span.set_attribute(semconv.USAGE_OUTPUT_TOKENS, reply.usage.completion_tokens)
    finish = "tool_calls" if reply.message.tool_calls else "stop"
    span.set_attribute(semconv.RESPONSE_FINISH_REASONS, (finish,))
