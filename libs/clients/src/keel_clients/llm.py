"""Client of ``keel.llm.v1.LLMGateway``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
from opentelemetry.trace import Span

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_clients.call import Caller, CallOptions, client_span
from keel_clients.mapping import (
    context_to_proto,
    message_from_proto,
    message_to_proto,
    spec_to_proto,
    usage_from_proto,
)
from keel_contracts.chat import ChatMessage, LLMReply, RequestContext, ToolSpec
from keel_contracts.errors import Unavailable
from keel_contracts.memo import IdentityMemo
from keel_core import semconv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionOptions:
    """Optional knobs of one request; the gateway's routing decides what is left empty."""

    model: str = ""
    temperature: float = 0.0
    max_tokens: int = 0
    complexity: str = ""
    cache: bool = False
    # None: the provider's own sampling seed (the field stays unset on the wire).
    seed: int | None = None


@dataclass(frozen=True)
class StreamedText:
    """A piece of the answer as it is generated; the last item of a stream is the reply."""

    delta: str


class LLMClient:
    """Owns no channel: the composition root opens it and closes it on stop.

    ``retries`` retries UNAVAILABLE (the gateway restarting, a blip) with doubling backoff; a
    deadline is not retried, since a call that took the whole deadline will likely take it
    again.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        options: CallOptions | None = None,
        *,
        retries: int = 0,
        backoff_s: float = 0.5,
    ) -> None:
        self._stub = llm_pb2_grpc.LLMGatewayStub(channel)
        self._caller = Caller(options or CallOptions())
        self._retries = retries
        self._backoff_s = backoff_s

    async def complete(
        self,
        ctx: RequestContext,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> LLMReply:
        request = _request(ctx, messages, tools, options or CompletionOptions())
        with client_span("chat", _attributes(ctx)) as span:
            response = await self._complete_with_retries(request, ctx)
            reply = reply_from_proto(response)
            _describe(span, reply)
            return reply

    async def complete_stream(
        self,
        ctx: RequestContext,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> AsyncIterator[StreamedText | LLMReply]:
        """Text deltas as they come, then the whole reply (usage, model, tool calls)."""
        request = _request(ctx, messages, tools, options or CompletionOptions())
        with client_span("chat", _attributes(ctx)) as span:
            stream = self._caller.stream(
                self._stub.CompleteStream, request, ctx, timeout_s=self._caller.options.timeout_s
            )
            async for chunk in stream:
                if chunk.HasField("final"):
                    reply = reply_from_proto(chunk.final)
                    _describe(span, reply)
                    yield reply
                elif chunk.delta:
                    yield StreamedText(chunk.delta)

    async def _complete_with_retries(
        self, request: llm_pb2.CompleteRequest, ctx: RequestContext
    ) -> llm_pb2.CompleteResponse:
        delay = self._backoff_s
        for attempt in range(self._retries + 1):
            try:
                return await self._caller.unary(self._stub.Complete, request, ctx)
            except Unavailable as exc:
                if attempt == self._retries:
                    raise
                log.warning("llm-gateway unavailable (attempt %d): %s", attempt + 1, exc)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def reply_from_proto(response: llm_pb2.CompleteResponse) -> LLMReply:
    return LLMReply(
        # Whatever role the gateway echoes, this is the model speaking.
        message=message_from_proto(response.message, role="assistant"),
        usage=usage_from_proto(response.usage),
        model=response.model,
        provider=response.provider,
        cached=response.cached,
        finish_reason=response.finish_reason,
    )


# A session's whole history and catalog are re-sent at every step and never change (frozen):
# each message and spec is converted once (~4 µs each; ~80 µs a call at 20 messages) and the
# request takes a copy of the converted form.
_message_proto = IdentityMemo[ChatMessage, common_pb2.ChatMessage](message_to_proto)
_spec_proto = IdentityMemo[ToolSpec, llm_pb2.ToolSpec](spec_to_proto)


def _request(
    ctx: RequestContext,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    options: CompletionOptions,
) -> llm_pb2.CompleteRequest:
    return llm_pb2.CompleteRequest(
        context=context_to_proto(ctx),
        messages=[_message_proto(m) for m in messages],
        tools=[_spec_proto(t) for t in tools],
        model=options.model,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        complexity=options.complexity,
        cache=options.cache,
        seed=options.seed,
    )


def _attributes(ctx: RequestContext) -> dict[str, str]:
    return {
        semconv.OPERATION: semconv.CHAT,
        semconv.PROVIDER: "keel.llm-gateway",
        semconv.CONVERSATION_ID: ctx.session_id,
    }


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
