"""Store, retrieve within a token budget, forget. The rules live here; vectors and storage sit
behind the ports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from keel_core.errors import InvalidArgument
from keel_memory.domain.models import (
    MAX_CONTENT_BYTES,
    MAX_SESSION_ID,
    MEMORY_TYPES,
    MemoryEntry,
    MemoryHit,
    MemoryItem,
    MemoryType,
    Retrieval,
    estimate_tokens,
)
from keel_memory.domain.ports import Embedder, MemoryStore


@dataclass(frozen=True)
class RetrievalLimits:
    default_token_budget: int = 1000
    default_top_k: int = 10
    max_top_k: int = 100


class MemoryService:
    def __init__(
        self, store: MemoryStore, embedder: Embedder, limits: RetrievalLimits | None = None
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._limits = limits or RetrievalLimits()

    async def store(
        self,
        type_: MemoryType,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        session_id: str = "",
    ) -> MemoryEntry:
        """Embed and upsert one entry. The same type and content always give the same id, so a
        repeated fact replaces the earlier copy (its metadata and session become the latest)."""
        _check_content(content)
        _check_metadata(metadata or {})
        if len(session_id) > MAX_SESSION_ID:
            raise InvalidArgument(f"session_id is longer than {MAX_SESSION_ID} characters")
        entry = MemoryEntry.create(
            type_, content, metadata=dict(metadata or {}), session_id=session_id
        )
        [vector] = await self._embedder.embed([content])
        await self._store.upsert([(entry, vector)])
        return entry

    async def retrieve(
        self,
        query: str,
        *,
        types: Sequence[MemoryType] = (),
        token_budget: int = 0,
        top_k: int = 0,
        filters: Mapping[str, str] | None = None,
    ) -> Retrieval:
        """The most similar entries that fit ``token_budget`` (0: the default), at most ``top_k``.

        Each requested type (none: all) is searched on its own, so one plentiful type cannot
        crowd out the others; the hits are merged by score and then taken greedily: in score
        order, an item that does not fit the remaining budget is skipped and smaller ones after
        it may still fit.
        """
        if not query.strip():
            raise InvalidArgument("query is empty")
        budget, k = self._limits_for(token_budget, top_k)
        wanted = tuple(dict.fromkeys(types)) or MEMORY_TYPES
        [vector] = await self._embedder.embed([query])
        hits: list[MemoryHit] = []
        for type_ in wanted:
            hits += await self._store.search(vector, [type_], filters or {}, k)
        hits.sort(key=lambda hit: (-hit.score, hit.entry.id))
        return _fit(hits, budget, k)

    async def forget(self, *, ids: Sequence[str] = (), session_id: str = "") -> int:
        """Delete the given ids and every entry of ``session_id``; how many entries went."""
        if not ids and not session_id:
            raise InvalidArgument("forget needs ids or a session_id")
        deleted = await self._store.delete(list(dict.fromkeys(ids))) if ids else 0
        if session_id:
            deleted += await self._store.delete_session(session_id)
        return deleted

    def _limits_for(self, token_budget: int, top_k: int) -> tuple[int, int]:
        if token_budget < 0:
            raise InvalidArgument("token_budget must not be negative")
        if top_k < 0:
            raise InvalidArgument("top_k must not be negative")
        if top_k > self._limits.max_top_k:
            raise InvalidArgument(f"top_k must be at most {self._limits.max_top_k}")
        return (
            token_budget or self._limits.default_token_budget,
            top_k or self._limits.default_top_k,
        )


def _fit(ranked: list[MemoryHit], budget: int, top_k: int) -> Retrieval:
    items: list[MemoryItem] = []
    used = 0
    for hit in ranked:
        if len(items) == top_k:
            break
        tokens = estimate_tokens(hit.entry.content)
        if used + tokens > budget:
            continue
        used += tokens
        items.append(MemoryItem(**hit.entry.model_dump(), score=hit.score, tokens=tokens))
    return Retrieval(items=tuple(items), tokens_used=used, token_budget=budget)


def _check_content(content: str) -> None:
    if not content.strip():
        raise InvalidArgument("content is empty")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise InvalidArgument(f"content is longer than {MAX_CONTENT_BYTES} bytes")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if any(not key for key in metadata):
        raise InvalidArgument("metadata keys must not be empty")
