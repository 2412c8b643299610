"""The memory service's use case: store, retrieve within a token budget, forget. The rules are
in ``domain`` (``rules``, ``budget``); vectors and storage sit behind the ports; every store
and forget is counted and audited here, so no front end can skip it.

Every call works within one ``MemoryScope`` (the caller's tenant, and agent where configured):
one tenant's memory never reaches another's retrieval, and no forget reaches across."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from keel_core.audit import AuditEmitter
from keel_memory.domain.budget import fit
from keel_memory.domain.ingest import (
    SOURCE_KEY,
    Chunk,
    IngestOutcome,
    check_batch,
    chunk_id,
)
from keel_memory.domain.models import (
    DEFAULT_SCOPE,
    MEMORY_TYPES,
    MemoryEntry,
    MemoryHit,
    MemoryScope,
    MemoryType,
    Retrieval,
)
from keel_memory.domain.ports import Embedder, MemoryStore
from keel_memory.domain.recency import RecencyBlend
from keel_memory.domain.rules import (
    RetrievalLimits,
    check_entry,
    check_forget,
    check_keys,
    check_query,
    ranked,
)
from keel_memory.metrics import MemoryMetrics


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryService:
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        audit: AuditEmitter,
        metrics: MemoryMetrics,
        limits: RetrievalLimits | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        recency: RecencyBlend | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._audit = audit
        self._metrics = metrics
        self._limits = limits or RetrievalLimits()
        self._clock = clock
        self._recency = recency or RecencyBlend()

    async def store(
        self,
        type_: MemoryType,
        content: str,
        *,
        metadata: Mapping[str, str] | None = None,
        session_id: str = "",
        actor: str = "",
        trace: str = "",
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> MemoryEntry:
        """Embed and upsert one entry. The same type and content always give the same id, so a
        repeated fact replaces the earlier copy (its metadata, session and time become the
        latest)."""
        check_entry(content, metadata or {}, session_id)
        entry = MemoryEntry.create(
            type_,
            content,
            metadata=dict(metadata or {}),
            session_id=session_id,
            created_at=self._clock(),
            scope=scope,
        )
        [vector] = await self._embedder.embed([content])
        await self._store.upsert([(entry, vector)])
        self._metrics.stored.labels(entry.type).inc()
        await self._audit.record(
            "memory.store",
            actor=actor or "unknown",
            subject=entry.id,
            session_id=session_id,
            trace=trace,
            details={
                "id": entry.id,
                "type": entry.type,
                "session": entry.session_id,
                "tenant": entry.tenant,
            },
        )
        return entry

    async def store_batch(
        self,
        type_: MemoryType,
        source: str,
        chunks: Sequence[Chunk],
        *,
        replace: bool = False,
        keep_ids: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
        session_id: str = "",
        actor: str = "",
        trace: str = "",
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> IngestOutcome:
        """Store a document's chunks (ids: ``domain.ingest.chunk_id``), embedding only those
        not stored yet; with ``replace``, delete the source's entries of this type that are
        neither among ``chunks`` nor in ``keep_ids``. One audit record per batch rather than
        per chunk: a folder of documents would otherwise flood the audit trail."""
        check_batch(source, chunks, replace)
        entries: dict[str, MemoryEntry] = {}
        ids: list[str] = []
        for chunk in chunks:
            meta = {**(metadata or {}), **chunk.metadata, SOURCE_KEY: source}
            check_entry(chunk.content, meta, session_id)
            entry = MemoryEntry(
                id=chunk_id(type_, source, chunk.content, scope),
                type=type_,
                content=chunk.content,
                metadata=meta,
                session_id=session_id,
                created_at=self._clock(),
                tenant=scope.tenant,
                agent=scope.agent,
            )
            ids.append(entry.id)
            entries.setdefault(entry.id, entry)
        there = set(await self._store.ids_where([type_], {SOURCE_KEY: source}, scope))
        new = [entry for entry_id, entry in entries.items() if entry_id not in there]
        if new:
            vectors = await self._embedder.embed([entry.content for entry in new])
            await self._store.upsert(list(zip(new, vectors, strict=True)))
        stale = sorted(there - set(ids) - set(keep_ids)) if replace else []
        removed = await self._store.delete(stale, scope) if stale else 0
        self._metrics.stored.labels(type_).inc(len(new))
        self._metrics.forgotten.inc(removed)
        await self._audit.record(
            "memory.ingest",
            actor=actor or "unknown",
            subject=source,
            session_id=session_id,
            trace=trace,
            details={
                "source": source,
                "type": type_,
                "stored": len(new),
                "unchanged": len(entries) - len(new),
                "removed": removed,
                "tenant": scope.tenant,
            },
        )
        return IngestOutcome(
            ids=tuple(ids), stored=len(new), unchanged=len(entries) - len(new), removed=removed
        )

    async def retrieve(
        self,
        query: str,
        *,
        types: Sequence[MemoryType] = (),
        token_budget: int = 0,
        top_k: int = 0,
        filters: Mapping[str, str] | None = None,
        type_budgets: Mapping[MemoryType, int] | None = None,
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> Retrieval:
        """The most similar entries that fit ``token_budget`` (0: the default), at most ``top_k``,
        and within each type's cap in ``type_budgets`` (0 or absent: none).

        Each requested type (none: all) is searched on its own, so one plentiful type cannot
        crowd out the others; the hits are merged by score (similarity, blended with recency
        where configured: ``domain.recency``) and then taken greedily (see ``budget.fit``).
        """
        check_query(query)
        check_keys(filters or {})
        budget, k = self._limits.resolve(token_budget, top_k, type_budgets)
        wanted = tuple(dict.fromkeys(types)) or MEMORY_TYPES
        [vector] = await self._embedder.embed([query])
        pool = self._recency.pool(k, self._limits.max_top_k)
        hits: list[MemoryHit] = []
        for type_ in wanted:
            hits += await self._store.search(vector, [type_], filters or {}, pool, scope)
        hits = self._recency.blend(hits, self._clock())
        retrieval = fit(ranked(hits), budget, k, type_budgets)
        self._metrics.retrieved.inc(len(retrieval.items))
        self._metrics.budget_utilisation.observe(retrieval.tokens_used / retrieval.token_budget)
        return retrieval

    async def forget(
        self,
        *,
        ids: Sequence[str] = (),
        session_id: str = "",
        older_than: timedelta | None = None,
        types: Sequence[MemoryType] = (),
        actor: str = "",
        trace: str = "",
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> int:
        """Delete the given ids, plus every entry matching all of the selectors given: of
        ``session_id``, stored more than ``older_than`` ago, of ``types`` (which only narrows).
        How many entries went."""
        check_forget(ids, session_id, older_than)
        deleted = await self._store.delete(list(dict.fromkeys(ids)), scope) if ids else 0
        if session_id or older_than is not None:
            deleted += await self._store.delete_where(
                session_id=session_id,
                created_before=self._clock() - older_than if older_than is not None else None,
                types=tuple(dict.fromkeys(types)),
                scope=scope,
            )
        self._metrics.forgotten.inc(deleted)
        await self._audit.record(
            "memory.forget",
            actor=actor or "unknown",
            subject=session_id or ("age" if older_than is not None else "ids"),
            trace=trace,
            session_id=session_id,
            details={
                "count": deleted,
                "ids": list(ids),
                "session": session_id,
                "older_than_s": _seconds(older_than),
                "types": list(types),
                "tenant": scope.tenant,
            },
        )
        return deleted


def _seconds(age: timedelta | None) -> float | int:
    """The age as the request gave it: whole seconds stay an integer in the audit record."""
    if age is None:
        return 0
    seconds = age.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds
