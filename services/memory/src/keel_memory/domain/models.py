"""Memory entries as data. An entry's id is the hash of its type and content (and of its scope,
outside the default tenant), so storing the same fact twice overwrites it instead of duplicating
it, and two tenants storing the same text keep two entries.

Every entry belongs to a tenant (and, where the service scopes by agent, to an agent): a store
files it there and a retrieval or forget sees only its caller's scope. Entries stored before
scopes existed belong to the tenant ``default``."""

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

DEFAULT_TENANT = "default"

Vector = list[float]


class MemoryScope(BaseModel):
    """Whose memory a call reads and writes: a tenant, and an agent where the service scopes by
    agent (``""``: every agent of the tenant)."""

    model_config = ConfigDict(frozen=True)

    tenant: str = Field(default=DEFAULT_TENANT, min_length=1)
    agent: str = ""


DEFAULT_SCOPE = MemoryScope()


def entry_id(type_: MemoryType, content: str, scope: MemoryScope = DEFAULT_SCOPE) -> str:
    """Content hash: 64 hex characters, the width of the Milvus primary key. The default scope
    keeps the id entries had before scopes existed; any other scope is part of the hash, so one
    tenant's store never replaces (or reveals by id) another tenant's entry."""
    if scope == DEFAULT_SCOPE:
        return sha256_hex(canonical_json({"type": type_, "content": content}))
    return sha256_hex(
        canonical_json(
            {"type": type_, "content": content, "tenant": scope.tenant, "agent": scope.agent}
        )
    )


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
    tenant: str = DEFAULT_TENANT
    agent: str = ""

    @property
    def scope(self) -> MemoryScope:
        return MemoryScope(tenant=self.tenant, agent=self.agent)

    @classmethod
    def create(
        cls,
        type_: MemoryType,
        content: str,
        *,
        metadata: dict[str, str] | None = None,
        session_id: str = "",
        created_at: datetime | None = None,
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> MemoryEntry:
        return cls(
            id=entry_id(type_, content, scope),
            type=type_,
            content=content,
            metadata=metadata or {},
            session_id=session_id,
            created_at=created_at or _now(),
            tenant=scope.tenant,
            agent=scope.agent,
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
