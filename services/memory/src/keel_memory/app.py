"""Composition root of the memory service: the only place that wires its parts.

``build(settings, runtime)`` wires the parts onto a runtime (the real one, or
``keel_core.testing.InMemoryRuntime`` in component tests) and starts nothing: Milvus opens in
a start hook; ``serve(settings)`` builds on a ``ServiceRuntime`` and runs it until SIGTERM.
"""

from __future__ import annotations

from dataclasses import dataclass

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service
from keel_memory.adapters.batching_embedder import BatchingEmbedder
from keel_memory.adapters.embedders import build_embedder, embedding_space
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.adapters.openai_embedder import OpenAIEmbedder
from keel_memory.adapters.static import StaticEmbedder
from keel_memory.adapters.store_on_start import StoreOnStart
from keel_memory.config import Settings
from keel_memory.domain.ports import Embedder
from keel_memory.domain.recency import RecencyBlend
from keel_memory.domain.rules import RetrievalLimits
from keel_memory.handlers.grpc_servicer import MemoryServicer
from keel_memory.metrics import MemoryMetrics
from keel_memory.usecase import MemoryService

SERVICE = "memory"


@dataclass(frozen=True)
class MemoryParts:
    service: MemoryService
    store: StoreOnStart
    embedder: Embedder


def build(settings: Settings, runtime: Runtime) -> MemoryParts:
    # The model loads here, before Milvus opens, so a missing model never leaves the data
    # folder locked.
    model = build_embedder(settings)
    # A model pays per call, so concurrent requests share calls; the static embedder's lookup
    # costs microseconds on the event loop and has nothing to share (adapters/static/).
    embedder: Embedder = (
        model
        if isinstance(model, StaticEmbedder)
        else BatchingEmbedder(
            model, max_batch=settings.embed_max_batch, max_queued=settings.embed_max_queued
        )
    )

    async def open_store() -> MilvusStore:
        return await MilvusStore.open(
            settings.milvus_uri,
            settings.collection,
            settings.embedding_dim,
            token=settings.milvus_token,
            timeout_s=settings.milvus_timeout_s,
            flush_every=settings.milvus_lite_flush_every,
            index=settings.index,
            max_queued=settings.milvus_max_queued,
            embedder=embedding_space(settings),
        )

    store = StoreOnStart(open_store)
    runtime.on_start(store.open)
    # Stop hooks run after the gRPC server has stopped (no call still uses the store) and also
    # when start-up fails, so the Lite data folder is always unlocked.
    runtime.on_stop(store.close)
    if isinstance(model, OpenAIEmbedder):
        runtime.on_stop(model.aclose)
    limits = RetrievalLimits(
        default_token_budget=settings.default_token_budget,
        default_top_k=settings.default_top_k,
        max_top_k=settings.max_top_k,
    )
    recency = RecencyBlend(settings.recency_half_life_s, settings.recency_weight)
    service = MemoryService(
        store,
        embedder,
        runtime.audit,
        MemoryMetrics(runtime.registry),
        limits,
        recency=recency,
    )
    runtime.serve_grpc(
        [
            (
                MemoryServicer(service, scope_by_agent=settings.scope_by_agent),
                memory_pb2_grpc.add_MemoryServiceServicer_to_server,
                memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
            )
        ]
    )
    # Calls per tenant (docs/rate-limits.md); off until limits are set.
    calls = [rule("/keel.memory.v1.MemoryService/", "calls")]
    rate_limits = settings.rate_limits.with_default_rules(calls)
    apply_rate_limits(RateLimiter(rate_limits), runtime, SERVICE)
    return MemoryParts(service, store, embedder)


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
