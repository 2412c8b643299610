"""The memory tools' port over the memory service's client (``keel_clients.MemoryClient``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from keel_clients import MemoryClient
from keel_tool_gateway.domain.models import MemoryHit, MemoryType, RequestContext


class MemorySettings(BaseModel):
    """Where the memory tools reach the memory service (env ``KEEL_TOOL_GATEWAY_MEMORY__…``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "127.0.0.1:50055"
    # Deadline of each Store/Retrieve; past it the tool call fails with an error.
    timeout_s: float = Field(default=3.0, gt=0)


class MemoryTools:
    """``MemoryPort`` in the memory tools' words (kinds, top-k) over the shared client."""

    def __init__(self, client: MemoryClient) -> None:
        self._client = client

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        *,
        kind: MemoryType,
        metadata: dict[str, str],
    ) -> str:
        return await self._client.store(ctx, content, kind, metadata)

    async def search(
        self,
        ctx: RequestContext,
        query: str,
        *,
        kinds: list[MemoryType],
        top_k: int,
        token_budget: int,
    ) -> list[MemoryHit]:
        return await self._client.retrieve(ctx, query, token_budget, types=kinds, top_k=top_k)
