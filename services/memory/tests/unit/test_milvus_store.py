"""The memory service on a real Milvus Lite file: ranking, dedupe, filters, forget, budget."""

import math
from pathlib import Path

import pytest

from keel_core.errors import InvalidArgument
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.models import entry_id
from keel_memory.domain.service import MemoryService
from keel_memory.errors import StoreOpenError

pytestmark = pytest.mark.milvus

FACTS = [
    "The payment service is restarted with systemctl restart payments",
    "Invoices are archived to the finance bucket every night",
    "The cafeteria serves lasagne on Fridays",
]


async def test_store_then_retrieve_ranks_the_relevant_fact_first(service: MemoryService) -> None:
    for fact in FACTS:
        await service.store("semantic", fact)
    result = await service.retrieve("how do I restart the payment service?")
    assert [item.content for item in result.items][0] == FACTS[0]
    assert len(result.items) == 3
    scores = [item.score for item in result.items]
    assert scores == sorted(scores, reverse=True)
    assert result.items[0].score > result.items[1].score
    assert result.tokens_used == sum(item.tokens for item in result.items)


async def test_storing_the_same_fact_twice_keeps_one_entry(
    service: MemoryService, store: MilvusStore
) -> None:
    first = await service.store("semantic", FACTS[0], metadata={"v": "1"})
    second = await service.store("semantic", FACTS[0], metadata={"v": "2"})
    assert first.id == second.id == entry_id("semantic", FACTS[0])
    result = await service.retrieve("payment service")
    assert [item.id for item in result.items] == [first.id]
    assert result.items[0].metadata == {"v": "2"}
    # The same text as another type is another memory.
    procedural = await service.store("procedural", FACTS[0])
    assert procedural.id != first.id


async def test_type_filter_returns_only_requested_types(service: MemoryService) -> None:
    await service.store("semantic", "deploys happen on Tuesdays")
    await service.store("episodic", "the Tuesday deploy failed at step three")
    await service.store("procedural", "to deploy, run make release on a Tuesday")
    only_episodic = await service.retrieve("Tuesday deploy", types=["episodic"])
    assert [item.type for item in only_episodic.items] == ["episodic"]
    two = await service.retrieve("Tuesday deploy", types=["semantic", "procedural"])
    assert sorted(item.type for item in two.items) == ["procedural", "semantic"]
    everything = await service.retrieve("Tuesday deploy")
    assert len(everything.items) == 3


async def test_metadata_filter_matches_exact_values_even_with_quotes(
    service: MemoryService,
) -> None:
    await service.store("semantic", "alpha fact", metadata={"team": "ops", "note": 'say "hi"'})
    await service.store("semantic", "alpha other", metadata={"team": "dev"})
    ops = await service.retrieve("alpha", filters={"team": "ops"})
    assert [item.content for item in ops.items] == ["alpha fact"]
    quoted = await service.retrieve("alpha", filters={"note": 'say "hi"'})
    assert [item.content for item in quoted.items] == ["alpha fact"]
    both = await service.retrieve("alpha", filters={"team": "ops", "note": "other"})
    assert both.items == ()
    # An injection attempt is just a value that matches nothing.
    injected = await service.retrieve("alpha", filters={"team": 'x" or type != "'})
    assert injected.items == ()


async def test_forget_by_id_and_by_session(service: MemoryService) -> None:
    kept = await service.store("episodic", "session one step one", session_id="s1")
    gone = await service.store("episodic", "session one step two", session_id="s1")
    other = await service.store("episodic", "session two step one", session_id="s2")
    assert await service.forget(ids=[gone.id, "no-such-id"]) == 1
    remaining = await service.retrieve("session step")
    assert {item.id for item in remaining.items} == {kept.id, other.id}
    assert await service.forget(session_id="s1") == 1
    assert await service.forget(session_id="s1") == 0
    remaining = await service.retrieve("session step")
    assert [item.id for item in remaining.items] == [other.id]
    with pytest.raises(InvalidArgument):
        await service.forget()


async def test_small_budget_returns_fewer_items_within_budget(service: MemoryService) -> None:
    long_fact = "budget " + "word " * 60  # ~77 tokens
    short_facts = ["budget note one", "budget note two", "budget note three"]
    await service.store("semantic", long_fact)
    for fact in short_facts:
        await service.store("semantic", fact)
    full = await service.retrieve("budget", token_budget=1000)
    assert len(full.items) == 4
    small = await service.retrieve("budget", token_budget=10)
    assert 0 < len(small.items) < 4
    assert small.tokens_used <= 10
    assert long_fact not in [item.content for item in small.items]
    assert small.tokens_used == sum(item.tokens for item in small.items)
    top_two = await service.retrieve("budget", top_k=2)
    assert len(top_two.items) == 2


async def test_invalid_requests_are_rejected(service: MemoryService) -> None:
    with pytest.raises(InvalidArgument, match="content"):
        await service.store("semantic", "   ")
    with pytest.raises(InvalidArgument, match="query"):
        await service.retrieve("")
    with pytest.raises(InvalidArgument, match="top_k"):
        await service.retrieve("x", top_k=1000)
    with pytest.raises(InvalidArgument, match="token_budget"):
        await service.retrieve("x", token_budget=-1)


async def test_data_survives_reopening_the_file(db_path: str) -> None:
    embedder = HashingEmbedder(384)
    first = await MilvusStore.open(db_path, "keel_memory", 384)
    stored = await MemoryService(first, embedder).store("semantic", "persisted fact")
    await first.close()
    # close() stopped the in-process Lite server, so this is a fresh open of the folder.
    again = await MilvusStore.open(db_path, "keel_memory", 384)
    try:
        result = await MemoryService(again, embedder).retrieve("persisted fact")
        assert [item.id for item in result.items] == [stored.id]
    finally:
        await again.close()


async def test_open_rejects_a_dimension_mismatch_and_bad_paths(
    db_path: str, tmp_path: Path
) -> None:
    store = await MilvusStore.open(db_path, "keel_memory", 384)
    await store.close()
    with pytest.raises(StoreOpenError, match="384-dimensional"):
        await MilvusStore.open(db_path, "keel_memory", 128)
    with pytest.raises(StoreOpenError, match=r"\.db"):
        await MilvusStore.open(str(tmp_path / "memory.sqlite"), "keel_memory", 384)


async def test_exact_text_ranks_first_among_many_similar(service: MemoryService) -> None:
    for i in range(50):
        await service.store("semantic", f"fact number {i}")
    result = await service.retrieve("fact number 7", top_k=5)
    assert result.items[0].content == "fact number 7"
    assert math.isclose(result.items[0].score, 1.0, abs_tol=1e-5)
    assert len(result.items) == 5


async def test_dedupe_and_forget_hold_across_lite_flushes(db_path: str) -> None:
    store = await MilvusStore.open(db_path, "keel_memory", 384, flush_every=2)
    try:
        service = MemoryService(store, HashingEmbedder(384))
        first = await service.store("semantic", "flushed fact", metadata={"v": "1"})
        await service.store("semantic", "another fact")  # second row: flushed to a segment
        again = await service.store("semantic", "flushed fact", metadata={"v": "2"})
        assert again.id == first.id
        result = await service.retrieve("flushed fact")
        assert [item.metadata for item in result.items if item.id == first.id] == [{"v": "2"}]
        assert len(result.items) == 2
        assert await service.forget(ids=[first.id]) == 1
        assert [item.content for item in (await service.retrieve("fact")).items] == ["another fact"]
    finally:
        await store.close()
