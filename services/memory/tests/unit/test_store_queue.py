"""The store under concurrency: searches run off the event loop, the queue for the store is
bounded, and concurrent searches of one shape ride in one Milvus search."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from keel_contracts.errors import Unavailable
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.domain.models import MemoryEntry

DIM = 384


class BlockingClient:
    """Stands in for pymilvus: ``search`` blocks its thread until ``release`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.searches: list[int] = []

    def search(self, collection: str, *, data: list[Any], **_: Any) -> list[list[Any]]:
        self.searches.append(len(data))
        self.entered.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("never released")
        return [[] for _ in data]


def blocking_store(max_queued: int = 0) -> tuple[MilvusStore, BlockingClient]:
    client = BlockingClient()
    return MilvusStore(client, "x.db", "c", max_queued=max_queued), client  # type: ignore[arg-type]


async def test_the_event_loop_serves_while_a_search_runs() -> None:
    store, client = blocking_store()
    search = asyncio.create_task(store.search([0.1] * DIM, ["semantic"], {}, 5))
    await asyncio.to_thread(client.entered.wait, 30)
    # The search holds its thread; a cheap call on the loop still answers meanwhile.
    answered = asyncio.Event()

    async def cheap() -> None:
        answered.set()

    await asyncio.wait_for(asyncio.create_task(cheap()), 30)
    assert answered.is_set()
    assert not search.done()
    client.release.set()
    assert await search == []


async def test_a_full_queue_is_refused_at_once_and_the_rest_finish() -> None:
    store, client = blocking_store(max_queued=3)
    running = asyncio.create_task(store.search([0.1] * DIM, ["semantic"], {}, 5))
    await asyncio.to_thread(client.entered.wait, 30)
    waiting = [
        asyncio.create_task(store.search([0.2] * DIM, [type_], {}, 5))
        for type_ in ("episodic", "procedural")
    ]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="limit 3"):
        await store.search([0.3] * DIM, ["semantic"], {}, 5)
    client.release.set()
    assert await asyncio.gather(running, *waiting) == [[], [], []]
    # Room again once the queue drained.
    assert await store.search([0.3] * DIM, ["semantic"], {}, 5) == []


async def test_searches_of_one_shape_waiting_together_become_one_search() -> None:
    store, client = blocking_store()
    first = asyncio.create_task(store.search([0.1] * DIM, ["episodic"], {}, 5))
    await asyncio.to_thread(client.entered.wait, 30)
    same = [asyncio.create_task(store.search([0.2] * DIM, ["semantic"], {}, 5)) for _ in range(4)]
    other = asyncio.create_task(store.search([0.2] * DIM, ["semantic"], {}, 7))
    await asyncio.sleep(0)
    client.release.set()
    await asyncio.gather(first, *same, other)
    # One search for the first, one for the four alike, one for the other top_k.
    assert client.searches == [1, 4, 1]


@pytest.mark.milvus
async def test_grouped_searches_answer_each_caller_as_alone(tmp_path: Path) -> None:
    store = await MilvusStore.open(str(tmp_path / "m.db"), "keel_memory", DIM)
    try:
        embedder = HashingEmbedder(DIM)
        facts = [f"fact {i}: the {w} service restarts at {i} am" for i, w in enumerate("abcdefgh")]
        vectors = await embedder.embed(facts)
        await store.upsert(
            [(MemoryEntry.create("semantic", f), v) for f, v in zip(facts, vectors, strict=True)]
        )
        queries = await embedder.embed([f"when does the {w} service restart" for w in "aceg"])
        alone = [await store.search(q, ["semantic"], {}, 3) for q in queries]
        calls: list[int] = []
        search = store._client.search

        def counting(*args: Any, **kwargs: Any) -> Any:
            calls.append(len(kwargs["data"]))
            return search(*args, **kwargs)

        store._client.search = counting  # type: ignore[method-assign]
        together = await asyncio.gather(*(store.search(q, ["semantic"], {}, 3) for q in queries))
    finally:
        await store.close()
    assert together == alone
    assert len(calls) < len(queries)
    assert sum(calls) == len(queries)
