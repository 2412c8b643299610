"""What a store, a retrieval and a forget may ask for, checked before any I/O: the limits of
the Milvus schema and of a retrieval, and the merge of per-type hits into one ranking."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from keel_contracts.errors import InvalidArgument
from keel_memory.domain.models import (
    DEFAULT_TENANT,
    MAX_CONTENT_BYTES,
    MAX_SESSION_ID,
    MemoryHit,
    MemoryScope,
    MemoryType,
)

# Metadata keys the store keeps for itself (the entry's tenant and agent): a caller may neither
# store nor filter by them, so no value it sends can move an entry into another scope.
RESERVED_KEYS = frozenset({"keel_tenant", "keel_agent"})


@dataclass(frozen=True)
class RetrievalLimits:
    default_token_budget: int = 1000
    default_top_k: int = 10
    max_top_k: int = 100

    def resolve(
        self,
        token_budget: int,
        top_k: int,
        type_budgets: Mapping[MemoryType, int] | None = None,
    ) -> tuple[int, int]:
        """The budget and ``top_k`` a retrieval runs with (0 asks for the default)."""
        if token_budget < 0:
            raise InvalidArgument("token_budget must not be negative")
        if top_k < 0:
            raise InvalidArgument("top_k must not be negative")
        if top_k > self.max_top_k:
            raise InvalidArgument(f"top_k must be at most {self.max_top_k}")
        if any(cap < 0 for cap in (type_budgets or {}).values()):
            raise InvalidArgument("a type's token_budget must not be negative")
        return token_budget or self.default_token_budget, top_k or self.default_top_k


def check_entry(content: str, metadata: Mapping[str, str], session_id: str) -> None:
    """Refuse what Milvus would refuse later, with the reason, before anything is embedded."""
    if not content.strip():
        raise InvalidArgument("content is empty")
    if len(content.encode()) > MAX_CONTENT_BYTES:
        raise InvalidArgument(f"content is longer than {MAX_CONTENT_BYTES} bytes")
    if any(not key for key in metadata):
        raise InvalidArgument("metadata keys must not be empty")
    check_keys(metadata)
    if len(session_id) > MAX_SESSION_ID:
        raise InvalidArgument(f"session_id is longer than {MAX_SESSION_ID} characters")


def check_keys(metadata: Mapping[str, str]) -> None:
    reserved = sorted(RESERVED_KEYS.intersection(metadata))
    if reserved:
        raise InvalidArgument(f"metadata keys {', '.join(reserved)} are reserved")


def scope_of(tenant: str, agent_id: str, *, by_agent: bool) -> MemoryScope:
    """The scope of a caller: its tenant (none given: ``default``), and its agent when the
    service scopes by agent."""
    return MemoryScope(tenant=tenant or DEFAULT_TENANT, agent=agent_id if by_agent else "")


def check_query(query: str) -> None:
    if not query.strip():
        raise InvalidArgument("query is empty")


def check_forget(ids: Sequence[str], session_id: str, older_than: timedelta | None) -> None:
    """``types`` only narrows a forget: on its own it would wipe whole memory types, which no
    caller should do by accident, so a forget needs ids, a session or an age."""
    if older_than is not None and older_than <= timedelta(0):
        raise InvalidArgument("older_than must be positive")
    if not ids and not session_id and older_than is None:
        raise InvalidArgument("forget needs ids, a session_id or an age (older_than)")


def ranked(hits: Iterable[MemoryHit]) -> list[MemoryHit]:
    """Best score first; equal scores in id order, so a retrieval is repeatable."""
    return sorted(hits, key=lambda hit: (-hit.score, hit.entry.id))
