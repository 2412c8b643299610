"""A model behind the LLM gateway, asked with the recorded prompts (``keel replay --model``)."""

from __future__ import annotations

import grpc

from keel_agent_loop.domain.models import ChatMessage, LLMReply, RequestContext, ToolSpec
from keel_clients import CallOptions, CompletionOptions, LLMClient
from keel_contracts.events.plans import Sampling


class GatewayModel:
    """``LLMGateway.Complete`` with ``model`` named. Asked as session ``replay:<id>``, so the
    gateway's per-session accounting keeps replays apart from the session they replay."""

    def __init__(self, channel: grpc.aio.Channel, model: str, timeout_s: float = 120.0) -> None:
        self._client = LLMClient(channel, CallOptions(timeout_s=timeout_s))
        self._options = CompletionOptions(model=model)

    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        asking = ctx.model_copy(update={"session_id": f"replay:{ctx.session_id}"})
        return await self._client.complete(asking, messages, tools, self._options)
