"""Recency blended into retrieval, with the real MiniLM embeddings and Milvus Lite: a restated
fact stored later outranks the stale near-duplicate only when the blend is on, and a recent but
unrelated entry never outranks a relevant one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.adapters.minilm import MiniLMEmbedder
from keel_memory.domain.models import MemoryEntry, MemoryHit
from keel_memory.domain.recency import RecencyBlend

from .conftest import MakeService

pytestmark = pytest.mark.milvus

QUERY = "When is the weekly team meeting?"
# MiniLM puts the stale sentence slightly closer to the query than its update (0.8955 vs 0.8897).
STALE = "The weekly team meeting is on Mondays at 10:00."
UPDATE = "Since March the weekly team meeting is held on Tuesdays at 10:00."
UNRELATED = "The office coffee machine is on the second floor."
NOW = datetime(2026, 12, 1, tzinfo=UTC)
WEEK = 7 * 24 * 3600.0


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder.load()


async def ranking(
    store: MilvusStore, make_service: MakeService, minilm: MiniLMEmbedder, blend: RecencyBlend
) -> list[str]:
    clock = [NOW - timedelta(days=30)]
    service = make_service(store, minilm, clock=lambda: clock[0], recency=blend)
    await service.store("semantic", STALE)
    clock[0] = NOW
    await service.store("semantic", UPDATE)
    await service.store("semantic", UNRELATED)
    retrieval = await service.retrieve(QUERY, top_k=3, token_budget=1000)
    return [item.content for item in retrieval.items]


async def test_without_the_blend_the_stale_fact_ranks_first(
    store: MilvusStore, make_service: MakeService, minilm: MiniLMEmbedder
) -> None:
    assert await ranking(store, make_service, minilm, RecencyBlend()) == [
        STALE,
        UPDATE,
        UNRELATED,
    ]


async def test_with_the_blend_the_newer_fact_ranks_first(
    store: MilvusStore, make_service: MakeService, minilm: MiniLMEmbedder
) -> None:
    blend = RecencyBlend(half_life_s=WEEK, weight=0.2)
    assert await ranking(store, make_service, minilm, blend) == [UPDATE, STALE, UNRELATED]


def test_the_blend_formula_and_its_bounds() -> None:
    blend = RecencyBlend(half_life_s=100.0, weight=0.5)
    entry = MemoryEntry.create("semantic", "x", created_at=NOW - timedelta(seconds=100))
    [hit] = blend.blend([MemoryHit(entry=entry, score=0.8)], NOW)
    assert hit.score == pytest.approx(0.5 * 0.8 + 0.5 * 0.5)
    assert blend.recency(NOW + timedelta(seconds=5), NOW) == 1.0  # a clock skew is "now"
    assert RecencyBlend().pool(10, 100) == 10
    assert blend.pool(10, 100) == 40
    assert blend.pool(50, 100) == 100
    for bad in ({"half_life_s": -1.0}, {"weight": 1.5}):
        with pytest.raises(ValueError, match="must"):
            RecencyBlend(**bad)  # type: ignore[arg-type]
