"""The two things the memory service needs from the outside world, as small interfaces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from keel_memory.domain.models import (
    DEFAULT_SCOPE,
    MemoryEntry,
    MemoryHit,
    MemoryScope,
    MemoryType,
    Vector,
)


class Embedder(Protocol):
    """Turns texts into unit vectors of ``dim`` floats; similar texts get close vectors."""

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]: ...


class MemoryStore(Protocol):
    """A vector store keyed by entry id. ``upsert`` replaces an entry with the same id.

    Every read and delete is confined to one ``scope`` (the entry's tenant, and its agent when
    the scope names one); an entry stored without a tenant counts as the ``default`` tenant's."""

    async def upsert(self, entries: Sequence[tuple[MemoryEntry, Vector]]) -> None: ...

    async def search(
        self,
        vector: Vector,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        top_k: int,
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[MemoryHit]:
        """Best ``top_k`` entries of the scope and the given types whose metadata holds every
        filter value, most similar first."""
        ...

    async def ids_where(
        self,
        types: Sequence[MemoryType],
        filters: Mapping[str, str],
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> list[str]:
        """The ids of every entry of the scope and types whose metadata holds every filter."""
        ...

    async def delete(self, ids: Sequence[str], scope: MemoryScope = DEFAULT_SCOPE) -> int:
        """Delete the scope's entries by id; the number that existed and are now gone."""
        ...

    async def delete_where(
        self,
        *,
        session_id: str = "",
        created_before: datetime | None = None,
        types: Sequence[MemoryType] = (),
        scope: MemoryScope = DEFAULT_SCOPE,
    ) -> int:
        """Delete every entry of the scope matching all the given selectors (at least one of
        ``session_id`` and ``created_before``); how many went."""
        ...
