"""The memory service on a real Milvus Lite file: ranking, dedupe, filters, forget, budget."""

import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from keel_contracts.errors import InvalidArgument
from keel_core.testing import FakeClock
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_index import IndexSettings
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.models import entry_id
from keel_memory.errors import StoreOpenError
from keel_memory.usecase import MemoryService

pytestmark = pytest.mark.milvus

MakeService = Callable[..., MemoryService]

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


async def test_data_survives_reopening_the_file(db_path: str, make_service: MakeService) -> None:
    embedder = HashingEmbedder(384)
    first = await MilvusStore.open(db_path, "keel_memory", 384)
    stored = await make_service(first, embedder).store("semantic", "persisted fact")
    await first.close()
    # close() stopped the in-process Lite server, so this is a fresh open of the folder.
    again = await MilvusStore.open(db_path, "keel_memory", 384)
    try:
        result = await make_service(again, embedder).retrieve("persisted fact")
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
    (tmp_path / "lite3.db").mkdir()
    with pytest.raises(StoreOpenError, match="is a folder"):
        await MilvusStore.open(str(tmp_path / "lite3.db"), "keel_memory", 384)


async def test_exact_text_ranks_first_among_many_similar(service: MemoryService) -> None:
    for i in range(50):
        await service.store("semantic", f"fact number {i}")
    result = await service.retrieve("fact number 7", top_k=5)
    assert result.items[0].content == "fact number 7"
    assert math.isclose(result.items[0].score, 1.0, abs_tol=1e-5)
    assert len(result.items) == 5


async def test_dedupe_and_forget_hold_across_lite_flushes(
    db_path: str, make_service: MakeService
) -> None:
    store = await MilvusStore.open(db_path, "keel_memory", 384, flush_every=2)
    try:
        service = make_service(store, HashingEmbedder(384))
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


async def test_forget_by_age_narrowed_by_type_and_session(
    store: MilvusStore, make_service: MakeService
) -> None:
    clock = FakeClock()
    service = make_service(store, HashingEmbedder(384), clock=clock.utcnow)
    old_episode = await service.store("episodic", "old episode of the deploy", session_id="s1")
    old_fact = await service.store("semantic", "old fact about the deploy")
    clock.advance(timedelta(days=10).total_seconds())
    new_episode = await service.store("episodic", "new episode of the deploy", session_id="s1")
    assert new_episode.created_at - old_episode.created_at == timedelta(days=10)

    async def remaining() -> set[str]:
        return {item.id for item in (await service.retrieve("deploy")).items}

    assert await service.forget(older_than=timedelta(days=5), types=["episodic"]) == 1
    assert await remaining() == {old_fact.id, new_episode.id}
    assert await service.forget(session_id="s1", older_than=timedelta(days=5)) == 0
    assert await service.forget(older_than=timedelta(days=5)) == 1
    assert await remaining() == {new_episode.id}
    assert await service.forget(session_id="s1", types=["semantic"]) == 0
    assert await service.forget(session_id="s1", types=["episodic"]) == 1
    assert await remaining() == set()


async def test_storing_a_fact_again_makes_it_young_again(
    store: MilvusStore, make_service: MakeService
) -> None:
    clock = FakeClock()
    service = make_service(store, HashingEmbedder(384), clock=clock.utcnow)
    first = await service.store("semantic", "the VPN needs a hardware token")
    clock.advance(timedelta(days=30).total_seconds())
    again = await service.store("semantic", "the VPN needs a hardware token")
    assert again.id == first.id
    assert await service.forget(older_than=timedelta(days=7)) == 0
    [item] = (await service.retrieve("VPN token")).items
    assert item.created_at == clock.utcnow()


async def test_forget_refuses_selectors_that_would_wipe_whole_types(service: MemoryService) -> None:
    with pytest.raises(InvalidArgument, match="ids, a session_id or an age"):
        await service.forget(types=["episodic"])
    with pytest.raises(InvalidArgument, match="positive"):
        await service.forget(older_than=timedelta(0))


async def test_per_type_budgets_over_the_real_store(service: MemoryService) -> None:
    for i in range(4):
        await service.store("episodic", f"incident {i}: the checkout page was down for an hour")
        await service.store("semantic", f"fact {i}: the checkout page runs on three replicas")
    capped = await service.retrieve(
        "checkout page", token_budget=1000, top_k=20, type_budgets={"episodic": 15}
    )
    episodic = [item for item in capped.items if item.type == "episodic"]
    assert len(episodic) == 1  # each is 14 tokens: a second would pass 15
    assert sum(1 for item in capped.items if item.type == "semantic") == 4
    with pytest.raises(InvalidArgument, match="negative"):
        await service.retrieve("checkout", type_budgets={"semantic": -1})


@pytest.mark.parametrize(
    "index",
    [
        IndexSettings(),
        IndexSettings(type="FLAT"),
        IndexSettings(type="IVF_FLAT", nlist=4, nprobe=4),
        IndexSettings(type="AUTOINDEX"),
    ],
    ids=lambda index: index.type or "default",
)
async def test_every_index_type_serves_the_same_queries(
    db_path: str, index: IndexSettings, make_service: MakeService
) -> None:
    store = await MilvusStore.open(db_path, "keel_memory", 384, index=index, flush_every=50)
    try:
        service = make_service(store, HashingEmbedder(384))
        for i in range(120):
            await service.store("semantic", f"runbook step {i} for service {i % 7}")
        result = await service.retrieve("runbook step 42 for service 0", top_k=3)
        assert result.items[0].content == "runbook step 42 for service 0"
        assert len(result.items) == 3
    finally:
        await store.close()


async def test_an_existing_collection_keeps_its_index(
    db_path: str, caplog: pytest.LogCaptureFixture, make_service: MakeService
) -> None:
    first = await MilvusStore.open(db_path, "keel_memory", 384, index=IndexSettings(type="FLAT"))
    await make_service(first, HashingEmbedder(384)).store("semantic", "kept under FLAT")
    await first.close()
    again = await MilvusStore.open(
        db_path, "keel_memory", 384, index=IndexSettings(type="IVF_FLAT")
    )
    try:
        assert "has a FLAT index, configured IVF_FLAT" in caplog.text
        result = await make_service(again, HashingEmbedder(384)).retrieve("kept under FLAT")
        assert [item.content for item in result.items] == ["kept under FLAT"]
    finally:
        await again.close()


async def test_lite_refuses_an_index_it_cannot_build(db_path: str) -> None:
    with pytest.raises(StoreOpenError, match="cannot build a HNSW index"):
        await MilvusStore.open(db_path, "keel_memory", 384, index=IndexSettings(type="HNSW"))


async def test_minilm_finds_a_fact_by_meaning_not_shared_words(
    store: MilvusStore, make_service: MakeService
) -> None:
    from keel_memory.adapters.minilm import MiniLMEmbedder

    service = make_service(store, MiniLMEmbedder.load())
    wanted = await service.store(
        "procedural", "To reboot the payments backend, run deploy/restart.sh"
    )
    await service.store("semantic", "The cafeteria serves lasagne on Fridays")
    await service.store("episodic", "Quarterly taxes were filed late in March")
    result = await service.retrieve("how do I restart the billing server?", top_k=1)
    assert [item.id for item in result.items] == [wanted.id]


async def test_a_collection_refuses_an_embedder_other_than_the_one_that_made_it(
    db_path: str,
) -> None:
    """Vectors of two embedders in one collection would retrieve nonsense without an error."""
    store = await MilvusStore.open(db_path, "keel_memory", 384, embedder="minilm")
    await store.close()
    with pytest.raises(StoreOpenError, match=r"made by the minilm embedder.*is minilm-static-v1"):
        await MilvusStore.open(db_path, "keel_memory", 384, embedder="minilm-static-v1")
    with pytest.raises(StoreOpenError, match=r"made by the minilm embedder.*is hashing"):
        await MilvusStore.open(db_path, "keel_memory", 384, embedder="hashing")
    again = await MilvusStore.open(db_path, "keel_memory", 384, embedder="minilm")
    await again.close()
    # Another collection of the same file is free to hold another embedder's vectors.
    other = await MilvusStore.open(db_path, "keel_memory_static", 384, embedder="minilm-static-v1")
    await other.close()


@pytest.mark.parametrize(
    ("embedder", "opens"),
    [
        ("minilm", True),
        ("hashing", True),
        ("openai:text-embedding-3-small", True),
        ("minilm-static-v1", False),
    ],
)
async def test_a_collection_from_before_embedders_were_recorded(
    db_path: str, embedder: str, opens: bool
) -> None:
    """Made by minilm, openai or hashing (the embedders of that time): those open it as before;
    a later embedder cannot have made it and is refused."""
    unrecorded = await MilvusStore.open(db_path, "keel_memory", 384)
    await unrecorded.close()
    if opens:
        store = await MilvusStore.open(db_path, "keel_memory", 384, embedder=embedder)
        await store.close()
        return
    with pytest.raises(StoreOpenError, match=r"before collections recorded their embedder"):
        await MilvusStore.open(db_path, "keel_memory", 384, embedder=embedder)
