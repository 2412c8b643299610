"""Composition root of the memory service: the only place that wires its parts."""

from __future__ import annotations

from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_core.runtime import ServiceRuntime, run_service
from keel_memory.adapters.embedders import build_embedder
from keel_memory.adapters.milvus_store import MilvusStore
from keel_memory.adapters.openai_embedder import OpenAIEmbedder
from keel_memory.config import Settings
from keel_memory.domain.service import MemoryService, RetrievalLimits
from keel_memory.handlers.grpc_servicer import MemoryServicer
from keel_memory.metrics import MemoryMetrics

SERVICE = "memory"


async def serve(settings: Settings) -> None:
    # The model loads before Milvus opens, so a missing model never leaves the data folder locked.
    embedder = build_embedder(settings)
    store = await MilvusStore.open(
        settings.milvus_uri,
        settings.collection,
        settings.embedding_dim,
        token=settings.milvus_token,
        timeout_s=settings.milvus_timeout_s,
        flush_every=settings.milvus_lite_flush_every,
        index=settings.index,
    )
    limits = RetrievalLimits(
        default_token_budget=settings.default_token_budget,
        default_top_k=settings.default_top_k,
        max_top_k=settings.max_top_k,
    )
    service = MemoryService(store, embedder, limits)
    runtime = ServiceRuntime(SERVICE, settings)
    # Stop hooks run after the gRPC server has stopped (no call still uses the store) and also
    # when start-up fails, so the Lite data folder is always unlocked.
    runtime.on_stop(store.close)
    if isinstance(embedder, OpenAIEmbedder):
        runtime.on_stop(embedder.aclose)
    servicer = MemoryServicer(service, runtime.audit, MemoryMetrics(runtime.registry))
    runtime.serve_grpc(
        [
            (
                servicer,
                memory_pb2_grpc.add_MemoryServiceServicer_to_server,
                memory_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
