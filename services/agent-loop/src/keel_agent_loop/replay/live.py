"""A model behind the LLM gateway, asked with the recorded prompts (``keel replay --model``)."""

from __future__ import annotations

import grpc

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_agent_loop.adapters.convert import (
    context_to_proto,
    message_to_proto,
    reply_from_proto,
    spec_to_proto,
)
from keel_agent_loop.domain.models import ChatMessage, LLMReply, RequestContext, ToolSpec
from keel_core.grpc import call_with_errors


class GatewayModel:
    """``LLMGateway.Complete`` with ``model`` named. Asked as session ``replay:<id>``, so the
    gateway's per-session accounting keeps replays apart from the session they replay."""

    def __init__(self, channel: grpc.aio.Channel, model: str, timeout_s: float = 120.0) -> None:
        self._stub = llm_pb2_grpc.LLMGatewayStub(channel)
        self._model = model
        self._timeout_s = timeout_s

    async def complete(
        self, ctx: RequestContext, messages: list[ChatMessage], tools: list[ToolSpec]
    ) -> LLMReply:
        asking = ctx.model_copy(update={"session_id": f"replay:{ctx.session_id}"})
        request = llm_pb2.CompleteRequest(
            context=context_to_proto(asking),
            model=self._model,
            messages=[message_to_proto(m) for m in messages],
            tools=[spec_to_proto(t) for t in tools],
        )
        response = await call_with_errors(
            lambda: self._stub.Complete(request, timeout=self._timeout_s)
        )
        return reply_from_proto(response)
