"""The loop's ports over the shared clients of the other services (``keel_clients``).

The LLM port is ``keel_clients.LLMClient`` itself; these two adapt the tool gateway's and the
memory service's clients to what the loop asks of them.
"""

from __future__ import annotations

from keel_agent_loop.domain.models import RequestContext, ToolCall, ToolOutcome, ToolSpec
from keel_agent_loop.domain.ports import MemoryType
from keel_clients import MemoryClient, ToolClient


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
