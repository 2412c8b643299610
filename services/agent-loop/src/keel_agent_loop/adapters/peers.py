"""The loop's ports over the shared clients of the other services (``keel_clients``).

``SampledLLM`` adapts ``keel_clients.LLMClient`` (a session's sampling becomes its completion
options); the other two adapt the tool gateway's and the memory service's clients.
"""

from __future__ import annotations

from keel_agent_loop.domain.models import (
    ChatMessage,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
)
from keel_agent_loop.domain.ports import MemoryType
from keel_clients import CompletionOptions, LLMClient, MemoryClient, ToolClient
from keel_contracts.events.plans import Sampling


class SampledLLM:
    """``LLMPort``: the client, asked at the session's temperature and seed when it has them (the
    seed reaches the provider and the gateway's cache key). It never
    opts a sampled call into the gateway's response cache (``CompletionOptions.cache`` stays
    off), so each debater's draw is its own; temperature 0 is cached as always, keyed by the
    whole prompt (the stance is in the system message)."""

    def __init__(self, client: LLMClient) -> None:
        self._client = client

    async def complete(
        self,
        ctx: RequestContext,
        messages: list[ChatMessage],
        tools: list[ToolSpec],
        sampling: Sampling | None = None,
    ) -> LLMReply:
        if sampling is None:
            return await self._client.complete(ctx, messages, tools)
        options = CompletionOptions(temperature=sampling.temperature, seed=sampling.seed)
        return await self._client.complete(ctx, messages, tools, options)


class CachedCatalogTools:
    """``ToolPort``: the catalog of a profile is fetched once and kept for the life of the
    process (a failed fetch is not kept); a registry that changes at run time needs a
    restart."""

    def __init__(self, client: ToolClient) -> None:
        self._client = client
        self._catalogs: dict[str, list[ToolSpec]] = {}

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        cached = self._catalogs.get(profile)
        if cached is None:
            cached = self._catalogs[profile] = await self._client.list_tools(profile)
        return list(cached)

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        return await self._client.execute(
            ctx, call, idempotency_key, approval_id, task_text=task_text
        )


class MemoryContext:
    """``MemoryPort``: what the loop puts in a prompt is the retrieved entries' text."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    async def retrieve(self, ctx: RequestContext, query: str, budget: int) -> list[str]:
        hits = await self._client.retrieve(ctx, query, budget)
        return [hit.content for hit in hits if hit.content]

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        memory_type: MemoryType,
        metadata: dict[str, str],
    ) -> str:
        return await self._client.store(ctx, content, memory_type, metadata)
