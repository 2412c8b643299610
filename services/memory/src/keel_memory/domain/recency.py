"""Recency blended into a retrieval's ranking: newer memories win over older near-duplicates.

``score = (1 - weight) * similarity + weight * 0.5 ** (age / half_life)``: the recency term is
1 for an entry stored now, ½ one half-life ago, and tends to 0, so with a small weight it only
reorders entries whose similarities are close (an updated fact and the stale one it restates)
and never lifts an unrelated recent entry over a clearly relevant old one. Off by default
(``half_life_s`` 0): a retrieval then ranks by similarity alone, as it always did.

Applied to the hits after the store's search, in the use case, so Milvus Lite and a Milvus
server blend identically; the search asks for more candidates than ``top_k`` (``pool``) so an
entry just outside the most similar ``top_k`` can still be lifted by being recent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from keel_memory.domain.models import MemoryHit

POOL_FACTOR = 4


@dataclass(frozen=True)
class RecencyBlend:
    half_life_s: float = 0.0
    weight: float = 0.0

    def __post_init__(self) -> None:
        if self.half_life_s < 0:
            raise ValueError("half_life_s must not be negative")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError("weight must be between 0 and 1")

    @property
    def enabled(self) -> bool:
        return self.half_life_s > 0 and self.weight > 0

    def pool(self, top_k: int, max_top_k: int) -> int:
        """How many hits to ask the store for, per type, to rank ``top_k`` of them."""
        return max(top_k, min(top_k * POOL_FACTOR, max_top_k)) if self.enabled else top_k

    def recency(self, stored_at: datetime, now: datetime) -> float:
        age_s = max((now - stored_at).total_seconds(), 0.0)
        return float(0.5 ** (age_s / self.half_life_s))

    def blend(self, hits: Iterable[MemoryHit], now: datetime) -> list[MemoryHit]:
        """The hits with their blended score (unchanged when the blend is off)."""
        if not self.enabled:
            return list(hits)
        w = self.weight
        return [
            hit.model_copy(
                update={"score": (1 - w) * hit.score + w * self.recency(hit.entry.created_at, now)}
            )
            for hit in hits
        ]
