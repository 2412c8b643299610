"""Dynamic batching of embedding requests: concurrent callers share model calls, each gets the
vectors it would have got alone, a lone caller waits for nothing, a full queue refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from keel_contracts.errors import Unavailable
from keel_memory.adapters.batching_embedder import BatchingEmbedder
from keel_memory.adapters.hashing_embedder import HashingEmbedder
from keel_memory.adapters.minilm import MiniLMEmbedder
from keel_memory.adapters.minilm.embedder import ModelNotFoundError
from keel_memory.domain.models import Vector

TEXTS = [f"session {i} asks about the refund queue number {i}" for i in range(20)]


class Recording:
    """An embedder that records each call's texts; while ``gate`` is cleared a call waits."""

    def __init__(self, inner: HashingEmbedder | MiniLMEmbedder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    @property
    def dim(self) -> int:
        return self.inner.dim

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls.append(list(texts))
        self.entered.set()
        await self.gate.wait()
        return await self.inner.embed(texts)


async def test_concurrent_requests_share_calls_and_each_gets_its_own_vector() -> None:
    model = Recording(HashingEmbedder(64))
    batching = BatchingEmbedder(model, max_batch=8)

    together = await asyncio.gather(*(batching.embed([text]) for text in TEXTS))

    alone = [await HashingEmbedder(64).embed([text]) for text in TEXTS]
    assert together == alone
    # 20 requests of one text, at most 8 per call: 3 calls, not 20.
    assert len(model.calls) == 3
    assert sorted(text for call in model.calls for text in call) == sorted(TEXTS)


async def test_requests_arriving_during_a_batch_go_in_the_next_one() -> None:
    model = Recording(HashingEmbedder(64))
    batching = BatchingEmbedder(model)
    model.gate.clear()
    first = asyncio.create_task(batching.embed([TEXTS[0]]))
    await model.entered.wait()
    # The first request started at once, alone: no window held it back.
    assert model.calls == [[TEXTS[0]]]
    later = [asyncio.create_task(batching.embed([text])) for text in TEXTS[1:6]]
    await asyncio.sleep(0)
    assert len(model.calls) == 1  # they wait for the running batch
    model.gate.set()
    await asyncio.gather(first, *later)
    assert model.calls == [[TEXTS[0]], TEXTS[1:6]]


async def test_a_request_of_several_texts_keeps_its_order() -> None:
    batching = BatchingEmbedder(HashingEmbedder(64), max_batch=4)
    got = await asyncio.gather(batching.embed(TEXTS[:3]), batching.embed(TEXTS[3:10]))
    assert got == [
        await HashingEmbedder(64).embed(TEXTS[:3]),
        await HashingEmbedder(64).embed(TEXTS[3:10]),
    ]


async def test_a_full_queue_refuses_at_once_and_the_queued_still_finish() -> None:
    model = Recording(HashingEmbedder(64))
    batching = BatchingEmbedder(model, max_batch=2, max_queued=3)
    model.gate.clear()
    running = asyncio.create_task(batching.embed([TEXTS[0]]))
    await model.entered.wait()
    queued = [asyncio.create_task(batching.embed([text])) for text in TEXTS[1:4]]
    await asyncio.sleep(0)
    with pytest.raises(Unavailable, match="limit 3"):
        await batching.embed([TEXTS[4]])
    model.gate.set()
    assert len(await asyncio.gather(running, *queued)) == 4
    # Room again once the queue drained.
    assert len(await batching.embed([TEXTS[4]])) == 1


async def test_a_failing_batch_fails_its_callers_and_not_the_next() -> None:
    class Failing(Recording):
        async def embed(self, texts: Sequence[str]) -> list[Vector]:
            if "boom" in texts:
                raise RuntimeError("model broke")
            return await super().embed(texts)

    batching = BatchingEmbedder(Failing(HashingEmbedder(64)))
    results = await asyncio.gather(
        batching.embed(["boom"]), batching.embed(["fine"]), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)  # the same batch
    assert len(await batching.embed(["fine"])) == 1


async def test_minilm_vectors_are_the_same_batched_as_alone() -> None:
    try:
        model = MiniLMEmbedder.load()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))
    batching = BatchingEmbedder(model, max_batch=16)
    texts = [TEXTS[0], "short", "a much longer question about which team approved the refunds"]
    together = await asyncio.gather(*(batching.embed([text]) for text in texts))
    assert batching.batches == 1
    for [batched], text in zip(together, texts, strict=True):
        [single] = await model.embed([text])
        np.testing.assert_allclose(batched, single, atol=1e-5)
