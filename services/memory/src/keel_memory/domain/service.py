"""Store, retrieve within a token budget, forget. The rules live here; vectors and storage sit
behind the ports."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keel_contracts.errors import InvalidArgument
from keel_memory.domain.budget import fit
from keel_memory.domain.models import (
    MAX_CONTENT_BYTES,
    MAX_SESSION_ID,
    MEMORY_TYPES,
    MemoryEntry,
    MemoryHit,
    MemoryType,
    Retrieval,
)
from keel_memory.domain.ports import Embedder, MemoryStore


@dataclass(frozen=True)
class RetrievalLimits:
    default_token_budget: int = 1000
    default_top_k: int = 10
    max_top_k: int = 100


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryService:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        limits: RetrievalLimits | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._limits = limits or RetrievalLimits()
        self._clock = clock

    async def store(
        self,
        type_: MemoryType,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        session_id: str = "",
    ) -> MemoryEntry:
        """Embed and upsert one entry. The same type and content always give the same id, so a
        repeated fact replaces the earlier copy (its metadata, session and time become the
        latest)."""
        _check_content(content)
        _check_metadata(metadata or {})
        if len(session_id) > MAX_SESSION_ID:
            raise InvalidArgument(f"session_id is longer than {MAX_SESSION_ID} characters")
        entry = MemoryEntry.create(
            type_,
            content,
            metadata=dict(metadata or {}),
            session_id=session_id,
            created_at=self._clock(),
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
        type_budgets: Mapping[MemoryType, int] | None = None,
    ) -> Retrieval:
        """The most similar entries that fit ``token_budget`` (0: the default), at most ``top_k``,
        and within each type's cap in ``type_budgets`` (0 or absent: none).

        Each requested type (none: all) is searched on its own, so one plentiful type cannot
        crowd out the others; the hits are merged by score and then taken greedily (see
        ``budget.fit``).
        """
        if not query.strip():
            raise InvalidArgument("query is empty")
        budget, k = self._limits_for(token_budget, top_k)
        if any(cap < 0 for cap in (type_budgets or {}).values()):
            raise InvalidArgument("a type's token_budget must not be negative")
        wanted = tuple(dict.fromkeys(types)) or MEMORY_TYPES
        [vector] = await self._embedder.embed([query])
        hits: list[MemoryHit] = []
        for type_ in wanted:
            hits += await self._store.search(vector, [type_], filters or {}, k)
        hits.sort(key=lambda hit: (-hit.score, hit.entry.id))
        return fit(hits, budget, k, type_budgets)

    async def forget(
        self,
        *,
        ids: Sequence[str] = (),
        session_id: str = "",
        older_than: timedelta | None = None,
        types: Sequence[MemoryType] = (),
    ) -> int:
        """Delete the given ids, plus every entry matching all of the selectors given: of
        ``session_id``, stored more than ``older_than`` ago, of ``types``. ``types`` only
        narrows: on its own it would wipe whole memory types, which no caller should do by
        accident. How many entries went."""
        if older_than is not None and older_than <= timedelta(0):
            raise InvalidArgument("older_than must be positive")
        if not ids and not session_id and older_than is None:
            raise InvalidArgument("forget needs ids, a session_id or an age (older_than)")
        deleted = await self._store.delete(list(dict.fromkeys(ids))) if ids else 0
        if session_id or older_than is not None:
            deleted += await self._store.delete_where(
                session_id=session_id,
                created_before=self._clock() - older_than if older_than is not None else None,
                types=tuple(dict.fromkeys(types)),
            )
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


def _check_content(content: str) -> None:
    if not content.strip():
        raise InvalidArgument("content is empty")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise InvalidArgument(f"content is longer than {MAX_CONTENT_BYTES} bytes")


def _check_metadata(metadata: Mapping[str, str]) -> None:
    if any(not key for key in metadata):
        raise InvalidArgument("metadata keys must not be empty")
