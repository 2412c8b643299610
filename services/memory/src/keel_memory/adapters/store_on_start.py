"""A ``MemoryStore`` wired before it can be opened.

A composition root's ``build`` is synchronous and starts nothing, while opening Milvus is
asynchronous (and, for Lite, starts a local server and locks its data folder); so the
service's parts are wired to this stand-in and the runtime opens the real store in a start
hook and closes it in a stop hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from keel_contracts.errors import Unavailable
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.models import (
    DEFAULT_SCOPE,
    MemoryEntry,
    MemoryHit,
    MemoryScope,
    MemoryType,
    Vector,
)

Opener = Callable[[], Awaitable[MilvusStore]]


class StoreOnStart:
    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._store: MilvusStore | None = None

    async def open(self) -> None:
        self._store = await self._opener()

    async def close(self) -> None:
        """Close the store if it opened; safe when start-up failed before it did."""
        if self._store is not None:
            await self._store.close()

    @property
    def opened(self) -> MilvusStore:
        if self._store is None:
            raise Unavailable("the memory store is not open yet")
        return self._store

    async def upsert(self, entries: Sequence[tuple[MemoryEntry, Vector]]) -> None:
        await self.opened.upsert(entries)

    async def search(
        self,
        vector: Vector,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        top_k: int,
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[MemoryHit]:
        return await self.opened.search(vector, types, filters, top_k, scope)

    async def ids_where(
        self,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[str]:
        return await self.opened.ids_where(types, filters, scope)

    async def delete(self, ids: Sequence[str], scope: MemoryScope = DEFAULT_SCOPE) -> int:
        return await self.opened.delete(ids, scope)

    async def delete_where(
        self,
        *,
        session_id: str = "",
        created_before: datetime | None = None,
        types: Sequence[MemoryType] = (),
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> int:
        return await self.opened.delete_where(
            session_id=session_id, created_before=created_before, types=types, scope=scope
        )
