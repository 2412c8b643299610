"""``memory_store`` and ``memory_search``: the agent's long-term memory, through the memory
service (``keel.memory.v1``) behind ``MemoryPort``.

The caller's context (session, agent, tenant, trace) comes from ``current_call()`` and is sent
with every request, so the memory service files and audits the entry under the session the
call serves, not under the gateway.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.errors import KeelError
from keel_tool_gateway.domain.call_context import current_call
from keel_tool_gateway.domain.models import MemoryType, RequestContext
from keel_tool_gateway.domain.ports import MemoryPort
from keel_tool_gateway.domain.registry import Tool, ToolError


class MemoryStoreInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=8000, description="What to remember.")
    type: MemoryType = Field(
        default="semantic",
        description="semantic (facts), episodic (what happened) or procedural (how to).",
    )
    metadata: dict[str, str] = Field(
        default_factory=dict, max_length=16, description="Optional string labels."
    )


class MemorySearchInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000, description="What to look for.")
    types: list[MemoryType] = Field(
        default_factory=list, max_length=3, description="Memory types; empty means all."
    )
    top_k: int = Field(default=5, ge=1, le=20, description="Most entries to return.")
    token_budget: int = Field(
        default=0, ge=0, le=8000, description="Most tokens in total; 0: the service default."
    )


def request_context() -> RequestContext:
    """The caller of the running tool call, as the memory service wants it.

    ``ToolContext`` carries session and trace today; agent, tenant and profile are taken too
    once it carries them.
    """
    call = current_call()
    return RequestContext(
        session_id=call.session_id,
        traceparent=call.traceparent,
        agent_id=call.agent_id,
        tenant=call.tenant,
        agent_profile=call.agent_profile,
    )


def make_memory_tools(memory: MemoryPort) -> list[Tool[Any]]:
    async def store(args: MemoryStoreInput) -> str:
        try:
            memory_id = await memory.store(
                request_context(), args.content, kind=args.type, metadata=args.metadata
            )
        except KeelError as exc:
            raise ToolError(f"memory service: {exc}") from exc
        return f"stored {args.type} memory {memory_id}"

    async def search(args: MemorySearchInput) -> str:
        try:
            hits = await memory.search(
                request_context(),
                args.query,
                kinds=list(dict.fromkeys(args.types)),
                top_k=args.top_k,
                token_budget=args.token_budget,
            )
        except KeelError as exc:
            raise ToolError(f"memory service: {exc}") from exc
        if not hits:
            return "no memories found"
        return "\n".join(
            f"[{n}] ({hit.type}, score {hit.score:.3f}, id {hit.id}) {hit.content}"
            for n, hit in enumerate(hits, 1)
        )

    return [
        Tool(
            name="memory_store",
            description="Remember a piece of text in long-term memory; returns its id.",
            input_model=MemoryStoreInput,
            run=store,
            # Ids are content hashes: storing the same text twice keeps one entry.
            effects="idempotent",
        ),
        Tool(
            name="memory_search",
            description="Search long-term memory by meaning; returns the best entries.",
            input_model=MemorySearchInput,
            run=search,
            effects="read_only",
        ),
    ]
