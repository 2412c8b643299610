"""Client of ``keel.memory.v1.MemoryService``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_clients.call import Caller, CallOptions, client_span
from keel_clients.mapping import context_to_proto
from keel_contracts.chat import RequestContext
from keel_contracts.memory import MemoryHit, MemoryType
from keel_core import semconv

TO_PROTO: dict[MemoryType, memory_pb2.MemoryType.ValueType] = {
    "episodic": memory_pb2.MEMORY_TYPE_EPISODIC,
    "semantic": memory_pb2.MEMORY_TYPE_SEMANTIC,
    "procedural": memory_pb2.MEMORY_TYPE_PROCEDURAL,
}
FROM_PROTO: dict[int, MemoryType] = {value: name for name, value in TO_PROTO.items()}


@dataclass(frozen=True)
class StoredChunks:
    """What a batch Store did: the id of each chunk in order; chunks newly stored, already
    there (skipped), and the source's old chunks deleted (a replacing batch only)."""

    ids: tuple[str, ...]
    stored: int
    unchanged: int
    removed: int


class MemoryClient:
    """Owns no channel: the composition root opens it and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = memory_pb2_grpc.MemoryServiceStub(channel)
        self._caller = Caller(options or CallOptions())

    async def store(
        self,
        ctx: RequestContext,
        content: str,
        memory_type: MemoryType,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Store one entry; returns its id (a content hash, so storing twice is harmless)."""
        request = memory_pb2.StoreRequest(
            context=context_to_proto(ctx),
            type=TO_PROTO[memory_type],
            content=content,
            metadata=dict(metadata or {}),
        )
        attributes = {"keel.memory.type": memory_type, semconv.CONVERSATION_ID: ctx.session_id}
        with client_span("store keel.memory", attributes):
            response = await self._caller.unary(self._stub.Store, request, ctx)
            return str(response.id)

    async def store_chunks(
        self,
        ctx: RequestContext,
        source: str,
        chunks: Sequence[str],
        memory_type: MemoryType,
        *,
        replace: bool = False,
        keep_ids: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> StoredChunks:
        """Store chunks of the document ``source`` in one call (ids from tenant, source and
        chunk hash: what is already stored is skipped); ``replace`` on the document's last
        batch deletes its chunks that are not among these or ``keep_ids``."""
        request = memory_pb2.StoreRequest(
            context=context_to_proto(ctx),
            type=TO_PROTO[memory_type],
            metadata=dict(metadata or {}),
            source=source,
            chunks=[memory_pb2.StoreChunk(content=chunk) for chunk in chunks],
            replace=replace,
            keep_ids=list(keep_ids),
        )
        attributes = {"keel.memory.type": memory_type, "keel.memory.chunks": len(chunks)}
        with client_span("store keel.memory", attributes):
            response = await self._caller.unary(self._stub.Store, request, ctx)
        return StoredChunks(
            ids=tuple(response.ids),
            stored=response.stored,
            unchanged=response.unchanged,
            removed=response.removed,
        )

    async def retrieve(
        self,
        ctx: RequestContext,
        query: str,
        token_budget: int,
        *,
        types: Sequence[MemoryType] = (),
        top_k: int = 0,
        filters: Mapping[str, str] | None = None,
    ) -> list[MemoryHit]:
        """The best entries that fit ``token_budget``, best first; empty ``types`` means all."""
        request = memory_pb2.RetrieveRequest(
            context=context_to_proto(ctx),
            query=query,
            token_budget=token_budget,
            types=[TO_PROTO[t] for t in types],
            top_k=top_k,
            filters=dict(filters or {}),
        )
        attributes: dict[str, str | int] = {
            semconv.OPERATION: semconv.RETRIEVAL,
            semconv.DATA_SOURCE_ID: "keel.memory",
            semconv.CONVERSATION_ID: ctx.session_id,
            "keel.memory.token_budget": token_budget,
        }
        with client_span("retrieval keel.memory", attributes) as span:
            response = await self._caller.unary(self._stub.Retrieve, request, ctx)
            hits = [hit_from_proto(item) for item in response.items]
            span.set_attribute("keel.memory.items", len(hits))
            return hits

    async def forget(
        self,
        ctx: RequestContext,
        *,
        ids: Sequence[str] = (),
        session_id: str = "",
        older_than_s: int = 0,
        types: Sequence[MemoryType] = (),
    ) -> int:
        """How many entries were deleted."""
        request = memory_pb2.ForgetRequest(
            context=context_to_proto(ctx),
            ids=list(ids),
            session_id=session_id,
            older_than_s=older_than_s,
            types=[TO_PROTO[t] for t in types],
        )
        response = await self._caller.unary(self._stub.Forget, request, ctx)
        return int(response.deleted)


def hit_from_proto(item: memory_pb2.MemoryItem) -> MemoryHit:
    return MemoryHit(
        id=item.id,
        type=FROM_PROTO.get(item.type, "semantic"),
        content=item.content,
        score=item.score,
        metadata=dict(item.metadata),
        tokens=item.tokens,
        session_id=item.session_id,
        created_at_ms=item.created_at_ms,
    )
