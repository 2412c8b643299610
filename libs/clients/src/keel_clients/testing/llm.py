"""A fake LLM gateway: answers from a script and keeps every request it was sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_clients.mapping import (
    context_from_proto,
    message_from_proto,
    message_to_proto,
    usage_to_proto,
)
from keel_contracts.chat import ChatMessage, LLMReply, RequestContext, ToolSpec

Script = Callable[[RequestContext, list[ChatMessage]], LLMReply]


@dataclass(frozen=True)
class LLMRequest:
    ctx: RequestContext
    messages: list[ChatMessage]
    tools: list[ToolSpec]
    # The ``traceparent`` the call carried as metadata ("" without one).
    traceparent: str = ""


def text(content: str) -> LLMReply:
    return LLMReply(message=ChatMessage(role="assistant", content=content), model="fake")


class FakeLLMGateway(llm_pb2_grpc.LLMGatewayServicer):
    """``replies`` are answered in order (the last one repeats); a callable decides each one.
    A ``failures`` count makes the first calls fail with ``code`` (default UNAVAILABLE)."""

    def __init__(
        self,
        replies: Sequence[LLMReply] | Script = (),
        *,
        failures: int = 0,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
    ) -> None:
        self._replies = replies
        self.failures = failures
        self._code = code
        self.failure_message = "fake gateway failing on purpose"
        self._answered = 0
        self.requests: list[LLMRequest] = []

    async def Complete(
        self, request: llm_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.CompleteResponse:
        ctx = context_from_proto(request.context)
        messages = [message_from_proto(m) for m in request.messages]
        tools = [
            ToolSpec(
                name=t.name,
                description=t.description,
                parameters_json_schema=t.parameters_json_schema,
            )
            for t in request.tools
        ]
        metadata = dict(context.invocation_metadata() or ())
        self.requests.append(LLMRequest(ctx, messages, tools, str(metadata.get("traceparent", ""))))
        if self.failures > 0:  # every request is recorded, the failed ones too
            self.failures -= 1
            await context.abort(self._code, self.failure_message)
        reply = self._next(ctx, messages)
        self._answered += 1
        return llm_pb2.CompleteResponse(
            message=message_to_proto(reply.message),
            model=reply.model,
            provider=reply.provider or "fake",
            usage=usage_to_proto(reply.usage),
            cached=reply.cached,
            finish_reason=reply.finish_reason,
        )

    def _next(self, ctx: RequestContext, messages: list[ChatMessage]) -> LLMReply:
        if callable(self._replies):
            return self._replies(ctx, messages)
        if not self._replies:
            return text("done")
        index = min(self._answered, len(self._replies) - 1)
        return self._replies[index]
