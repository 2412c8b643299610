"""The memory service's real composition root on an in-memory runtime: Milvus Lite opened by
the start hook in a tmp_path, the hashing or static embedder, a real gRPC server on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.common.v1 import common_pb2
from keel.memory.v1 import memory_pb2, memory_pb2_grpc
from keel_contracts.errors import ConfigError, Unavailable
from keel_contracts.events import AuditRecord
from keel_contracts.topics import AUDIT
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryRuntime
from keel_memory.adapters.static import StaticEmbedder
from keel_memory.app import SERVICE, build
from keel_memory.config import Settings

pytestmark = pytest.mark.milvus

CTX = common_pb2.RequestContext(session_id="s1", agent_id="a1")


async def test_the_built_service_stores_retrieves_counts_and_audits(tmp_path: Path) -> None:
    settings = Settings(
        milvus_uri=str(tmp_path / "milvus" / "memory.db"), embedder="hashing", default_top_k=3
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        stored = await stub.Store(
            memory_pb2.StoreRequest(
                context=CTX,
                type=memory_pb2.MEMORY_TYPE_PROCEDURAL,
                content="restart the payment service with systemctl restart payments",
            ),
            timeout=10,
        )
        await stub.Store(
            memory_pb2.StoreRequest(
                context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content="lasagne on Fridays"
            ),
            timeout=10,
        )
        found = await stub.Retrieve(
            memory_pb2.RetrieveRequest(context=CTX, query="restart the payment service"),
            timeout=10,
        )
    assert found.items[0].id == stored.id
    assert found.items[0].session_id == "s1"
    audited = [e.parse(AuditRecord) for e in runtime.bus.envelopes(AUDIT)]
    assert [(r.action, r.actor) for r in audited] == [("memory.store", "a1")] * 2
    assert audited[0].subject == stored.id
    stored_count = runtime.registry.get_sample_value(
        "keel_memory_stored_total", {"type": "procedural"}
    )
    assert stored_count == 1.0
    assert runtime.registry.get_sample_value("keel_memory_retrieved_items_total") == 2.0
    # The stop hook closed the store (and released the Lite data folder).
    with pytest.raises(Unavailable):
        await parts.store.opened.search([0.0] * settings.embedding_dim, ["semantic"], {}, 1)


@pytest.mark.timeout(600)  # may distil the table first (see test_static_embedder.py)
async def test_the_service_with_static_embeddings_stores_and_retrieves(tmp_path: Path) -> None:
    """KEEL_MEMORY_EMBEDDER=minilm-static end to end over gRPC, with the real distilled table
    (cached by `make install`; distilled on first use otherwise). A paraphrase sharing no
    content word with its fact still finds it."""
    settings = Settings(
        milvus_uri=str(tmp_path / "milvus" / "memory.db"), embedder="minilm-static", default_top_k=3
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    # Nothing to batch: a lookup is cheaper than the queue (adapters/static/embedder.py).
    assert isinstance(parts.embedder, StaticEmbedder)
    facts = [
        "The cafeteria serves lasagne on Fridays.",
        "Restart the payment service with systemctl restart payments.",
        "Alice is allergic to peanuts.",
    ]
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        ids = [
            (
                await stub.Store(
                    memory_pb2.StoreRequest(
                        context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content=fact
                    ),
                    timeout=10,
                )
            ).id
            for fact in facts
        ]
        found = await stub.Retrieve(
            memory_pb2.RetrieveRequest(context=CTX, query="What does the canteen cook on Friday?"),
            timeout=10,
        )
    assert found.items[0].id == ids[0]


@pytest.mark.timeout(600)  # may distil the table first (see test_static_embedder.py)
async def test_a_collection_made_by_another_embedder_stops_start_up(tmp_path: Path) -> None:
    """Memories stored with one embedder, then the service restarted with another: start-up
    fails naming both, rather than retrieving nonsense from a mixed collection."""
    uri = str(tmp_path / "milvus" / "memory.db")
    first = Settings(milvus_uri=uri, embedder="hashing")
    runtime = InMemoryRuntime(SERVICE, first)
    build(first, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        await memory_pb2_grpc.MemoryServiceStub(channel).Store(
            memory_pb2.StoreRequest(
                context=CTX, type=memory_pb2.MEMORY_TYPE_SEMANTIC, content="lasagne on Fridays"
            ),
            timeout=10,
        )
    second = Settings(milvus_uri=uri, embedder="minilm-static")
    runtime = InMemoryRuntime(SERVICE, second)
    build(second, runtime)
    with pytest.raises(ConfigError, match=r"made by the hashing embedder.*is minilm-static-v1"):
        async with runtime.running():
            pass
