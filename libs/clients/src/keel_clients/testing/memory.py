"""A fake memory service: entries in a list, retrieval by shared words, trimmed to the
budget (one token a word), ids as content hashes like the real one."""

from __future__ import annotations

import grpc

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_clients.mapping import context_from_proto
from keel_clients.memory import FROM_PROTO, TO_PROTO
from keel_contracts.canonical import sha256_hex
from keel_contracts.memory import MemoryHit


class FakeMemoryService(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, entries: list[MemoryHit] | None = None) -> None:
        self.entries: list[MemoryHit] = list(entries or [])
        # What each Retrieve asked: the query and its token budget.
        self.queries: list[tuple[str, int]] = []

    async def Store(
        self, request: memory_pb2.StoreRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.StoreResponse:
        entry_id = sha256_hex(request.content.encode())[:32]
        if all(e.id != entry_id for e in self.entries):
            self.entries.append(
                MemoryHit(
                    id=entry_id,
                    type=FROM_PROTO.get(request.type, "semantic"),
                    content=request.content,
                    metadata=dict(request.metadata),
                    tokens=len(request.content.split()),
                    session_id=context_from_proto(request.context).session_id,
                )
            )
        return memory_pb2.StoreResponse(id=entry_id)

    async def Retrieve(
        self, request: memory_pb2.RetrieveRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.RetrieveResponse:
        self.queries.append((request.query, request.token_budget))
        words = set(request.query.lower().split())
        types = {FROM_PROTO.get(t) for t in request.types}
        items: list[memory_pb2.MemoryItem] = []
        used = 0
        for entry in self.entries:
            if types and entry.type not in types:
                continue
            if not words & set(entry.content.lower().split()):
                continue
            if request.token_budget and used + entry.tokens > request.token_budget:
                break
            used += entry.tokens
            items.append(
                memory_pb2.MemoryItem(
                    id=entry.id,
                    type=TO_PROTO[entry.type],
                    content=entry.content,
                    metadata=entry.metadata,
                    score=1.0,
                    tokens=entry.tokens,
                    session_id=entry.session_id,
                )
            )
        return memory_pb2.RetrieveResponse(items=items, tokens_used=used)
