"""Dynamic batching of concurrent embedding requests.

When many sessions start at once, each one's first Retrieve embeds one short query. Embedded one
by one, in as many threads, they fight over two cores and the GIL: 50 queries took ~0.5 s on
average to answer. A model embeds a batch of short texts for little more than one (one matrix
product instead of many), so this queues the requests and runs them as batches, one batch at a
time, and hands each caller its own vectors.

No timer: an idle embedder starts a request at once (after one turn of the event loop, so
requests that arrived in the same turn go together), and whatever arrives while a batch runs
waits for it and goes in the next batch. The wait a request pays is thus at most one running
batch, and a lone request pays none. Padding does not change a text's vector (the embedders mask
it), so a text's vector is the same whichever batch it rode in.

The queue is bounded (``max_queued`` texts): past it a request is refused with
``Unavailable`` at once, rather than queueing behind work that would take longer than any caller
waits (``Unavailable``, not ``ResourceExhausted``: it is the service's load, not the caller's
quota, and callers such as the agent loop retry it with backoff).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from keel_contracts.errors import Unavailable
from keel_memory.domain.models import Vector
from keel_memory.domain.ports import Embedder


@dataclass
class _Request:
    texts: Sequence[str]
    done: asyncio.Future[list[Vector]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BatchingEmbedder:
    """An ``Embedder`` that embeds concurrent requests together through ``inner``.

    ``max_batch``: texts per call of ``inner`` (a single larger request still goes whole, on its
    own). ``max_queued``: texts waiting at most, beyond which requests are refused; 0: no limit.
    ``batches`` counts calls of ``inner`` (for metrics and tests)."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64, max_queued: int = 1024) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._inner = inner
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._queue: deque[_Request] = deque()
        self._queued_texts = 0
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def inner(self) -> Embedder:
        return self._inner

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        if self._max_queued and self._queued_texts + len(texts) > self._max_queued:
            raise Unavailable(
                f"the embedder has {self._queued_texts} texts queued (limit {self._max_queued}); "
                "try again shortly"
            )
        request = _Request(texts)
        self._queue.append(request)
        self._queued_texts += len(texts)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        # A caller that gives up (deadline, cancel) leaves its request to finish in its batch:
        # shielding keeps one caller's cancellation from failing the others' batch.
        return await asyncio.shield(request.done)

    async def _drain(self) -> None:
        """Run batches until the queue is empty; the task ends with it and the next request
        starts another."""
        batch: list[_Request] = []
        try:
            await asyncio.sleep(0)  # let requests of the same loop turn join the first batch
            while self._queue:
                batch = self._take()
                await self._run(batch)
        except BaseException:  # cancelled (shutdown): nobody waits for ever
            for request in [*batch, *self._queue]:
                if not request.done.done():
                    request.done.set_exception(Unavailable("the embedder stopped"))
            self._queue.clear()
            self._queued_texts = 0
            raise

    async def _run(self, batch: list[_Request]) -> None:
        """One call of ``inner`` for the batch; each caller gets its slice, or the failure."""
        texts = [text for request in batch for text in request.texts]
        self._queued_texts -= len(texts)
        self.batches += 1
        try:
            vectors = await self._inner.embed(texts)
        except Exception as exc:  # each caller of this batch gets its failure
            for request in batch:
                if not request.done.done():
                    request.done.set_exception(exc)
            return
        begin = 0
        for request in batch:
            end = begin + len(request.texts)
            if not request.done.done():
                request.done.set_result(vectors[begin:end])
            begin = end

    def _take(self) -> list[_Request]:
        """Requests from the front of the queue, up to ``max_batch`` texts (at least one)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].texts)
        while self._queue and size + len(self._queue[0].texts) <= self._max_batch:
            request = self._queue.popleft()
            size += len(request.texts)
            batch.append(request)
        return batch
