"""Memory entries as data. An entry's id is the hash of its type and content, so storing the same
fact twice overwrites it instead of duplicating it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.canonical import canonical_json, sha256_hex

MemoryType = Literal["episodic", "semantic", "procedural"]
MEMORY_TYPES: tuple[MemoryType, ...] = ("episodic", "semantic", "procedural")

# Milvus VARCHAR limits (the server counts UTF-8 bytes, so the domain does too).
MAX_CONTENT_BYTES = 65_535
MAX_SESSION_ID = 256

Vector = list[float]


def entry_id(type_: MemoryType, content: str) -> str:
    """Content hash: 64 hex characters, the width of the Milvus primary key."""
    return sha256_hex(canonical_json({"type": type_, "content": content}))


def estimate_tokens(text: str) -> int:
    """About four characters per token for English text (the usual rule of thumb for BPE
    tokenizers); rounded up so a non-empty text never costs zero. Good enough to keep a prompt
    inside its budget without shipping a tokenizer per model."""
    return math.ceil(len(text) / 4)


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: MemoryType
    content: str = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    session_id: str = ""
    created_at: datetime = Field(default_factory=_now)

    @classmethod
    def create(
        cls,
        type_: MemoryType,
        content: str,
        *,
        metadata: dict[str, str] | None = None,
        session_id: str = "",
        created_at: datetime | None = None,
    ) -> MemoryEntry:
        return cls(
            id=entry_id(type_, content),
            type=type_,
            content=content,
            metadata=metadata or {},
            session_id=session_id,
            created_at=created_at or _now(),
        )


class MemoryHit(BaseModel):
    """What a store returns for a search: an entry and its cosine similarity to the query."""

    model_config = ConfigDict(frozen=True)

    entry: MemoryEntry
    score: float


class MemoryItem(MemoryEntry):
    """A retrieved entry with its score and estimated token cost."""

    score: float
    tokens: int


class Retrieval(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: tuple[MemoryItem, ...] = ()
    tokens_used: int = 0
    token_budget: int
