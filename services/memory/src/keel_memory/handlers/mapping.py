"""Protobuf <-> domain conversions for the memory service."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from keel.memory.v1 import memory_pb2
from keel_contracts.errors import InvalidArgument
from keel_memory.domain.ingest import Chunk
from keel_memory.domain.models import MemoryItem, MemoryType, Retrieval

TO_PROTO: dict[MemoryType, memory_pb2.MemoryType.ValueType] = {
    "episodic": memory_pb2.MEMORY_TYPE_EPISODIC,
    "semantic": memory_pb2.MEMORY_TYPE_SEMANTIC,
    "procedural": memory_pb2.MEMORY_TYPE_PROCEDURAL,
}
FROM_PROTO: dict[int, MemoryType] = {value: name for name, value in TO_PROTO.items()}


def type_from_proto(value: int) -> MemoryType:
    try:
        return FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument(
            f"memory type must be EPISODIC, SEMANTIC or PROCEDURAL (got {value})"
        ) from None


def types_from_proto(values: Iterable[int]) -> list[MemoryType]:
    return [type_from_proto(value) for value in values]


def chunks_from_proto(chunks: Iterable[memory_pb2.StoreChunk]) -> list[Chunk]:
    return [Chunk(content=chunk.content, metadata=dict(chunk.metadata)) for chunk in chunks]


def filters_from_proto(filters: Mapping[str, str]) -> dict[str, str]:
    """Metadata filters of a Retrieve. An empty key names no metadata field: Milvus refuses
    the expression it makes, which reached the caller as UNAVAILABLE (a fuzz finding)."""
    if "" in filters:
        raise InvalidArgument("filters must not have an empty key")
    return dict(filters)


def type_budgets_from_proto(values: Iterable[memory_pb2.TypeBudget]) -> dict[MemoryType, int]:
    """Per-type caps; a type listed twice keeps its last cap."""
    return {type_from_proto(value.type): value.token_budget for value in values}


# The oldest age a Forget may name. Past it "now - age" leaves the dates a datetime can hold
# (year 1) and the call would crash; no memory is that old, so a larger age is a caller's bug,
# refused (a fuzz finding: was INTERNAL).
MAX_OLDER_THAN_S = 1000 * 365 * 24 * 3600


def older_than_from_proto(seconds: int) -> timedelta | None:
    """The age selector of a Forget: 0 (the proto default) means none."""
    if seconds < 0:
        raise InvalidArgument("older_than_s must not be negative")
    if seconds > MAX_OLDER_THAN_S:
        raise InvalidArgument(f"older_than_s must be at most {MAX_OLDER_THAN_S} (1000 years)")
    return timedelta(seconds=seconds) if seconds else None


def item_to_proto(item: MemoryItem) -> memory_pb2.MemoryItem:
    return memory_pb2.MemoryItem(
        id=item.id,
        type=TO_PROTO[item.type],
        content=item.content,
        metadata=item.metadata,
        score=item.score,
        tokens=item.tokens,
        session_id=item.session_id,
        created_at_ms=int(item.created_at.timestamp() * 1000),
    )


def retrieval_to_proto(retrieval: Retrieval) -> memory_pb2.RetrieveResponse:
    return memory_pb2.RetrieveResponse(
        items=[item_to_proto(item) for item in retrieval.items],
        tokens_used=retrieval.tokens_used,
    )
